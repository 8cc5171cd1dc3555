(function () {
  'use strict';
  // The data (report_flamegraph.cc): the call tree's nodes in pre-order (depth, frame, line,
  // bytes, count: a node's parent is the closest node before it one level up), frames (function,
  // file, module, inlined), threads, the memory timeline, and the uses: what the stack ending at
  // a node allocated on a thread in a span of time, and when those blocks were freed.
  var data = JSON.parse(document.getElementById('profile-data').textContent);
  var meta = data.meta, S = data.strings, F = data.frames, N = data.nodes;
  var threads = data.threads || [], timeline = data.timeline || { step_s: 0, live: [], heap: [], rss: [] };
  var uses = data.uses || { step_s: 0, rows: [] }, U = uses.rows;
  var n = N.length / 5, H = 18;
  var parent = new Int32Array(n), frame = new Int32Array(n), lines = new Int32Array(n), depth = new Int32Array(n);
  var nodeBytes = new Float64Array(n), nodeCount = new Float64Array(n);
  var last = [];  // last[d]: the latest node at depth d
  for (var k = 0; k < n; k++) {
    depth[k] = N[5 * k]; frame[k] = N[5 * k + 1]; lines[k] = N[5 * k + 2];
    nodeBytes[k] = N[5 * k + 3]; nodeCount[k] = N[5 * k + 4];
    parent[k] = depth[k] > 0 ? last[depth[k] - 1] : -1;
    last[depth[k]] = k;
  }
  var hasUses = U.length > 0 && uses.step_s > 0;
  var useSpans = 0;
  for (k = 0; k < U.length; k += 6) useSpans = Math.max(useSpans, U[k + 2] + 1, U[k + 3] + 1);
  if (hasUses && timeline.step_s > 0) {
    useSpans = Math.max(useSpans, Math.ceil(timeline.live.length * timeline.step_s / uses.step_s - 1e-9));
  }

  var $ = function (id) { return document.getElementById(id); };
  var chart = $('chart'), tip = $('tip'), info = $('match-info'), input = $('search');
  var state = { metric: 'bytes', range: null, thread: -1, inverted: false, collapse: true, query: '' };

  // ---- Names and numbers ----

  function fnOf(f) { return S[F[4 * f]]; }
  function fileOf(f) { return S[F[4 * f + 1]]; }
  function modOf(f) { return S[F[4 * f + 2]]; }
  function inlOf(f) { return F[4 * f + 3] === 1; }
  function unresolved(f) { return !fileOf(f) && /^0x[0-9a-f]+$|\+0x[0-9a-f]+$/.test(fnOf(f)); }

  // "std::vector<int, std::allocator<int> >::push_back(int const&)" -> "std::vector<\u2026>::push_back(\u2026)":
  // template arguments and parameters after a name elided; operator<, operator<< and friends kept
  // whole; text that is not a C++ name ("</b>") left as it is.
  function shortName(name) {
    var out = '', level = 0, i = 0, afterOp = false;
    while (i < name.length) {
      var op = /^operator\s*(<=>|<<=|>>=|<<|>>|<=|>=|->\*|->|<|>|\(\)|\[\])\s*/.exec(name.slice(i, i + 20));
      if (op && (i === 0 || /[\s:]/.test(name[i - 1]))) {
        if (level === 0) out += op[0];
        i += op[0].length;
        afterOp = true;
        continue;
      }
      var c = name[i], prev = i > 0 ? name[i - 1] : '';
      var opens = level > 0 || afterOp || (c === '<' ? /\w/.test(prev) : /[\w>)]/.test(prev));
      afterOp = false;
      if ((c === '<' || c === '(') && opens) {
        if (level === 0) out += c + (name[i + 1] === (c === '<' ? '>' : ')') ? '' : '\u2026');
        level++;
      } else if ((c === '>' || c === ')') && level > 0) {
        level--;
        if (level === 0) out += c;
      } else if (level === 0) {
        out += c;
      }
      i++;
    }
    return out;
  }

  function human(b) {
    var units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'], u = 0;
    while (b >= 1024 && u < units.length - 1) { b /= 1024; u++; }
    return u === 0 ? b + ' B' : b.toFixed(b < 100 ? 1 : 0) + ' ' + units[u];
  }
  function num(x) { return Math.round(x).toLocaleString('en-US'); }
  function pct(a, b) {
    var v = b > 0 ? 100 * a / b : 0;
    return (v >= 10 || v === 0 ? v.toFixed(1) : v.toFixed(2)) + '%';
  }
  function span(s) {
    if (s < 60) return (Math.round(s * 10) / 10) + ' s';
    var m = Math.floor(s / 60);
    if (m < 60) return m + ' min ' + Math.round(s - 60 * m) + ' s';
    return Math.floor(m / 60) + ' h ' + (m % 60) + ' min';
  }
  function seconds(s) { return (s < 10 ? s.toFixed(3) : s.toFixed(1)) + ' s'; }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function svg(tag, attrs) {
    var e = document.createElementNS($('timeline').namespaceURI, tag);
    Object.keys(attrs).forEach(function (a) { e.setAttribute(a, attrs[a]); });
    return e;
  }

  // ---- What each node allocated itself, under the range and thread filter ----

  var selfBytes = new Float64Array(n), selfCount = new Float64Array(n);
  function computeSelf() {
    selfBytes.fill(0);
    selfCount.fill(0);
    if (!hasUses) {
      // No uses in the data: the nodes' totals less their children's.
      for (var i = 0; i < n; i++) { selfBytes[i] += nodeBytes[i]; selfCount[i] += nodeCount[i]; }
      for (i = 1; i < n; i++) { selfBytes[parent[i]] -= nodeBytes[i]; selfCount[parent[i]] -= nodeCount[i]; }
      return;
    }
    var leaks = meta.view === 'leaks', r = state.range, t = state.thread;
    for (var j = 0; j < U.length; j += 6) {
      if (t >= 0 && U[j + 1] !== t) continue;
      var born = U[j + 2], freed = U[j + 3];
      if (r && (born < r[0] || born > r[1])) continue;
      // --leaks: still live at the end of the range (or of the capture).
      if (leaks && !(freed < 0 || (r && freed > r[1]))) continue;
      selfCount[U[j]] += U[j + 4];
      selfBytes[U[j]] += U[j + 5];
    }
  }

  // ---- The tree drawn: the call tree, or inverted, with inlined library frames folded ----

  function folded(f) {
    return state.collapse && inlOf(f) && (/^\/usr\/include\//.test(fileOf(f)) || /^(std|__gnu_cxx)::/.test(fnOf(f)));
  }

  var D = null;  // the drawn tree: parent, frame, line, depth, bytes, count, kids, and which nodes became which
  function newTree() {
    return { parent: [-1], frame: [-1], line: [0], depth: [0], bytes: [0], count: [0], index: new Map() };
  }
  function child(T, p, f, line) {
    var key = p * (F.length / 4) + f, c = T.index.get(key);
    if (c === undefined) {
      c = T.parent.length;
      T.index.set(key, c);
      T.parent.push(p); T.frame.push(f); T.line.push(line); T.depth.push(T.depth[p] + 1);
      T.bytes.push(0); T.count.push(0);
    } else if (T.line[c] !== line) {
      T.line[c] = -1;
    }
    return c;
  }

  function build() {
    computeSelf();
    var T = newTree(), i, c;
    if (!state.inverted) {
      var at = new Int32Array(n);
      for (i = 1; i < n; i++) {
        var p = at[parent[i]];
        at[i] = folded(frame[i]) ? p : child(T, p, frame[i], lines[i]);
      }
      for (i = 0; i < n; i++) { T.bytes[at[i]] += selfBytes[i]; T.count[at[i]] += selfCount[i]; }
      for (c = T.parent.length - 1; c > 0; c--) {
        T.bytes[T.parent[c]] += T.bytes[c];
        T.count[T.parent[c]] += T.count[c];
      }
    } else {
      // Each allocating node's path read from the allocating frame out to main.
      for (i = 1; i < n; i++) {
        if (selfBytes[i] === 0 && selfCount[i] === 0) continue;
        T.bytes[0] += selfBytes[i];
        T.count[0] += selfCount[i];
        for (var a = i, q = 0; a > 0; a = parent[a]) {
          if (folded(frame[a])) continue;
          q = child(T, q, frame[a], lines[a]);
          T.bytes[q] += selfBytes[i];
          T.count[q] += selfCount[i];
        }
      }
      if (selfBytes[0] || selfCount[0]) { T.bytes[0] += selfBytes[0]; T.count[0] += selfCount[0]; }
    }
    T.kids = T.parent.map(function () { return []; });
    for (c = 1; c < T.parent.length; c++) T.kids[T.parent[c]].push(c);
    T.index = null;
    D = T;
    sortKids();
  }

  function val(i) { return state.metric === 'bytes' ? D.bytes[i] : D.count[i]; }
  function sortKids() {
    D.kids.forEach(function (list) {
      list.sort(function (a, b) {
        return val(b) - val(a) || (state.metric === 'bytes' ? D.count[b] - D.count[a] : D.bytes[b] - D.bytes[a]) ||
          (fnOf(D.frame[a]) < fnOf(D.frame[b]) ? -1 : 1);
      });
    });
  }

  function fn(i) { return i === 0 ? 'all' : fnOf(D.frame[i]); }

  // ---- Header ----

  function header() {
    var views = {
      all: 'all allocations', leaks: 'still live at the end (--leaks)', temporary: 'temporary allocations (--temporary)'
    };
    document.title = 'rsrmem flamegraph: ' + (meta.id || 'capture');
    $('title').textContent = 'rsrmem flamegraph: ' + (meta.id || 'capture');
    var started = meta.start_time > 0 ?
      new Date(meta.start_time * 1000).toISOString().replace('T', ' ').slice(0, 19) + ' UTC' : '';
    var capture = num(meta.allocations) + ' allocations (' + human(meta.allocated_bytes) + '), ' +
      num(meta.frees) + ' frees (' + human(meta.freed_bytes) + ')';
    var facts = [
      ['service', meta.service], ['program', meta.program], ['pid', meta.pid ? String(meta.pid) : ''],
      ['kind', meta.kind], ['view', views[meta.view] || meta.view],
      ['this view', human(nodeBytes[0]) + ' in ' + num(nodeCount[0]) + ' allocations, ' + num(meta.stacks) + ' stacks']];
    // A difference of two captures has no capture totals of its own.
    if (meta.kind !== 'difference') {
      facts.splice(5, 0, ['started', started], ['duration', span(meta.duration_s)]);
      facts.push(['capture', capture], ['peak', human(meta.peak_bytes)],
        ['live at end', human(meta.live_bytes_at_end) + ' in ' + num(meta.live_blocks_at_end) + ' blocks'],
        ['threads', String(meta.threads)]);
    }
    var box = $('facts');
    facts.forEach(function (f) {
      if (!f[1]) return;
      var e = el('span');
      e.appendChild(el('span', 'k', f[0] + ': '));
      e.appendChild(document.createTextNode(f[1]));
      box.appendChild(e);
    });
    var warn = $('warnings');
    if (meta.truncated) {
      warn.appendChild(el('div', 'warn', 'Truncated: the capture stopped before its planned duration' +
        (meta.end_reason ? ' (' + meta.end_reason + ')' : '') + '; it covers the first ' +
        span(meta.duration_s) + ' only.'));
    }
    if (meta.dropped_events > 0) {
      warn.appendChild(el('div', 'warn', num(meta.dropped_events) +
        ' events were dropped because the capture writer fell behind: totals are lower bounds.'));
    }
    var select = $('thread');
    threads.forEach(function (t, i) {
      var o = el('option', '', t[0] + (t[1] ? ' ' + t[1] : ''));
      o.value = String(i);
      select.appendChild(o);
    });
    select.disabled = !hasUses || threads.length < 2;
  }

  // ---- Memory over time, and the range selection ----

  var W = 1000, TH = 130, top = 16, bottom = 18;
  var spanCount = timeline.live.length, total = spanCount * timeline.step_s;
  function drawTimeline() {
    var box = $('timeline');
    W = box.clientWidth || 1000;
    box.setAttribute('viewBox', '0 0 ' + W + ' ' + TH);
    box.replaceChildren();
    // The capture's live blocks on a scale of their own (right), the process's heap and RSS on
    // another (left): a process's RSS would flatten what the capture allocated.
    var most = function (names) {
      var m = 0;
      names.forEach(function (s) { timeline[s].forEach(function (v) { if (v > m) m = v; }); });
      return m;
    };
    var liveMost = most(['live']), processMost = most(['heap', 'rss']);
    var h = TH - top - bottom;
    function x(i) { return i / spanCount * W; }
    // A step line; the process's readings (every 100 ms) hold until the next one.
    function series(name, area, scale) {
      var y = function (v) { return top + h - v / (scale || 1) * h; };
      var pts = [], held = area ? 0 : -1;
      timeline[name].forEach(function (v, i) {
        if (v > 0 || area) held = v;
        if (held >= 0) pts.push(x(i).toFixed(1) + ',' + y(held).toFixed(1), x(i + 1).toFixed(1) + ',' + y(held).toFixed(1));
      });
      if (!scale || !pts.length) return;
      if (area) pts = [x(0) + ',' + y(0)].concat(pts, [x(spanCount) + ',' + y(0)]);
      box.appendChild(svg(area ? 'polygon' : 'polyline', { 'class': name, points: pts.join(' ') }));
    }
    box.appendChild(svg('line', { 'class': 'axis', x1: 0, y1: top + h, x2: W, y2: top + h }));
    series('live', true, liveMost);
    series('heap', false, processMost);
    series('rss', false, processMost);
    var label = function (text, tx, ty, anchor, cls) {
      var t = svg('text', { x: tx, y: ty, 'text-anchor': anchor, 'class': cls || '' });
      t.textContent = text;
      box.appendChild(t);
    };
    if (processMost > 0) label('process up to ' + human(processMost), 2, 11, 'start');
    label('live up to ' + human(liveMost), W - 2, 11, 'end', 'live-label');
    label('0 s', 2, TH - 4, 'start');
    label(seconds(total), W - 2, TH - 4, 'end');
    if (state.range) {
      var a = state.range[0] * uses.step_s / total * W, b = Math.min(W, (state.range[1] + 1) * uses.step_s / total * W);
      box.appendChild(svg('rect', { 'class': 'sel', x: a, y: top, width: Math.max(1, b - a), height: h }));
    }
  }

  function setRange(r) {
    if (r) {
      var a = Math.max(0, Math.min(r[0], r[1])), b = Math.min(useSpans - 1, Math.max(r[0], r[1]));
      r = a <= b ? [a, b] : null;
    }
    state.range = r;
    $('clear-range').hidden = !r;
    update();
  }

  // Seconds from the capture's start -> a use span.
  function spanAt(t) { return Math.floor(t / uses.step_s + 1e-9); }

  function wireTimeline() {
    if (spanCount === 0 || total <= 0) return;
    $('time').hidden = false;
    var box = $('timeline'), from = null;
    if (!hasUses) {  // the chart alone: no ranges without the uses
      box.style.cursor = 'default';
      return;
    }
    function at(ev) {
      var r = box.getBoundingClientRect();
      return Math.max(0, Math.min(1, (ev.clientX - r.left) / (r.width || 1))) * total;
    }
    box.addEventListener('mousedown', function (ev) {
      ev.preventDefault();
      from = at(ev);
    });
    document.addEventListener('mousemove', function (ev) {
      if (from === null) return;
      var to = at(ev);
      state.range = [spanAt(Math.min(from, to)), spanAt(Math.max(from, to))];
      drawTimeline();
    });
    document.addEventListener('mouseup', function (ev) {
      if (from === null) return;
      var to = at(ev), wide = Math.abs(to - from) / total * W >= 3;
      from = wide ? [spanAt(Math.min(from, to)), spanAt(Math.max(from, to))] : null;
      var picked = from;
      from = null;
      setRange(picked);
    });
    $('clear-range').addEventListener('click', function () { setRange(null); });
  }

  // ---- Drawing ----

  var colors = [];
  function color(i) {
    if (i === 0) return '#d6d6d6';
    var f = D.frame[i];
    if (colors[f]) return colors[f];
    var name = fnOf(f), h = 0;
    for (var c = 0; c < name.length; c++) h = (h * 31 + name.charCodeAt(c)) | 0;
    var r = ((h >>> 0) % 1000) / 1000, out;
    if (inlOf(f)) out = 'hsl(' + (175 + 25 * r).toFixed(0) + ',55%,' + (62 + 10 * r).toFixed(0) + '%)';
    else if (unresolved(f)) out = 'hsl(0,0%,' + (70 + 10 * r).toFixed(0) + '%)';
    else out = 'hsl(' + (8 + 42 * r).toFixed(0) + ',' + (75 + 15 * r).toFixed(0) + '%,' + (56 + 10 * r).toFixed(0) + '%)';
    colors[f] = out;
    return out;
  }

  var zoom = 0, matched = null;
  function frameBox(i, x, w, row, width, cls) {
    var search = matched ? (matched[i] ? ' m' : ' dim') : '';
    var e = el('div', 'f' + cls + (i !== 0 && inlOf(D.frame[i]) ? ' inl' : '') + search);
    e.style.cssText = 'left:' + (100 * x) + '%;width:' + (100 * w) + '%;top:' + (row * H) + 'px;background:' + color(i);
    e.dataset.i = i;
    if (w * width >= 22) e.textContent = i === 0 ? 'all' : shortName(fn(i));
    return e;
  }

  // Draws the zoomed frame full width under its (dimmed, full-width) callers, and below it every
  // descendant at least half a pixel wide.
  function render() {
    var width = chart.clientWidth || 1200, frag = document.createDocumentFragment();
    var anc = [];
    for (var a = D.parent[zoom]; a >= 0; a = D.parent[a]) anc.push(a);
    anc.reverse();
    anc.forEach(function (p, row) { frag.appendChild(frameBox(p, 0, 1, row, width, ' anc')); });
    var totalVal = val(zoom), rows = anc.length + 1, minW = 0.5 / width;
    var todo = [zoom], xs = [0];
    while (todo.length) {
      var i = todo.pop(), x = xs.pop();
      var w = totalVal > 0 ? val(i) / totalVal : 1, row = anc.length + D.depth[i] - D.depth[zoom];
      frag.appendChild(frameBox(i, x, w, row, width, ''));
      if (row + 1 > rows) rows = row + 1;
      if (totalVal <= 0) continue;
      var kids = D.kids[i];
      for (var c = 0; c < kids.length; c++) {
        var cw = val(kids[c]) / totalVal;
        if (cw >= minW) { todo.push(kids[c]); xs.push(x); }
        x += cw;
      }
    }
    chart.replaceChildren(frag);
    chart.style.height = rows * H + 'px';
    crumbs();
  }

  function crumbs() {
    var box = $('crumbs'), path = [];
    box.replaceChildren();
    if (zoom === 0) return;
    for (var a = zoom; a >= 0; a = D.parent[a]) path.push(a);
    path.reverse().forEach(function (p, c) {
      if (c > 0) box.appendChild(el('span', 'sep', '\u203a'));
      var name = p === 0 ? 'all' : shortName(fn(p));
      if (name.length > 48) name = name.slice(0, 47) + '\u2026';
      var link = el(p === zoom ? 'b' : 'a', '', name);
      link.dataset.i = p;
      box.appendChild(link);
    });
  }

  function zoomTo(i) {
    zoom = i;
    tip.style.display = 'none';
    render();
  }

  function showTip(i, ev) {
    tip.replaceChildren();
    var head = el('div');
    head.appendChild(el('span', 'fn', fn(i)));
    if (i !== 0 && inlOf(D.frame[i])) head.appendChild(el('span', 'tag', 'inlined'));
    tip.appendChild(head);
    function row(label, v) {
      var e = el('div');
      e.appendChild(el('span', 'k', label + ': '));
      e.appendChild(document.createTextNode(v));
      tip.appendChild(e);
    }
    if (i !== 0) {
      var f = D.frame[i], line = D.line[i];
      var where = line > 0 ? ':' + line : line < 0 ? ' (several lines)' : '';
      row('source', fileOf(f) ? fileOf(f) + where : 'unknown');
      row('module', modOf(f) || 'unknown');
      if (inlOf(f) && D.parent[i] > 0) row(state.inverted ? 'inlined, called from' : 'inlined into', fn(D.parent[i]));
    }
    row('bytes', human(D.bytes[i]) + ' (' + num(D.bytes[i]) + ' B)');
    row('allocations', num(D.count[i]));
    row('share', pct(D.bytes[i], D.bytes[0]) + ' of bytes, ' + pct(D.count[i], D.count[0]) + ' of allocations');
    if (zoom !== 0) row('of the zoomed frame', pct(val(i), val(zoom)));
    tip.style.display = 'block';
    var x = ev.clientX + 14, y = ev.clientY + 14;
    if (x + tip.offsetWidth > window.innerWidth - 4) x = Math.max(4, ev.clientX - tip.offsetWidth - 14);
    if (y + tip.offsetHeight > window.innerHeight - 4) y = Math.max(4, ev.clientY - tip.offsetHeight - 14);
    tip.style.left = x + 'px';
    tip.style.top = y + 'px';
  }

  // ---- Search: matching frames highlighted, the rest dimmed ----

  var matchFrames = 0, matchBytes = 0, matchCount = 0;
  function runSearch() {
    matched = null;
    info.textContent = '';
    var text = state.query;
    if (!text) return;
    var test, re = /^\/(.+)\/$/.exec(text);
    if (re) {
      try {
        var rx = new RegExp(re[1], 'i');
        test = function (s) { return rx.test(s); };
      } catch (err) {
        info.textContent = 'invalid regular expression';
        return;
      }
    } else {
      var lower = text.toLowerCase();
      test = function (s) { return s.toLowerCase().indexOf(lower) >= 0; };
    }
    var frameMatch = new Uint8Array(F.length / 4);
    for (var f = 0; f < frameMatch.length; f++) frameMatch[f] = test(fnOf(f)) ? 1 : 0;
    var count = D.parent.length;
    matched = new Uint8Array(count);
    matchFrames = 0; matchBytes = 0; matchCount = 0;
    // A matching frame's subtree counts once, not again for matching frames inside it.
    var todo = [0], inside = [false];
    while (todo.length) {
      var i = todo.pop(), within = inside.pop();
      if (i !== 0 && frameMatch[D.frame[i]]) {
        matched[i] = 1;
        matchFrames++;
        if (!within) { matchBytes += D.bytes[i]; matchCount += D.count[i]; within = true; }
      }
      D.kids[i].forEach(function (c) { todo.push(c); inside.push(within); });
    }
    showMatchInfo();
  }

  function showMatchInfo() {
    if (!matched) return;
    var share = state.metric === 'bytes' ? pct(matchBytes, D.bytes[0]) : pct(matchCount, D.count[0]);
    info.textContent = matchFrames + (matchFrames === 1 ? ' frame matches, ' : ' frames match, ') +
      share + ' of ' + (state.metric === 'bytes' ? 'bytes' : 'allocations');
  }

  // ---- State in the URL fragment ----

  function fragment(name) {
    var m = new RegExp('(?:^#|&)' + name + '=([^&]*)').exec(location.hash);
    if (!m) return '';
    try { return decodeURIComponent(m[1]); } catch (err) { return m[1]; }
  }
  function keepFragment() {
    var parts = [];
    if (state.query) parts.push('search=' + encodeURIComponent(state.query));
    if (state.range) {
      parts.push('range=' + +(state.range[0] * uses.step_s).toFixed(6) + '-' + +((state.range[1] + 1) * uses.step_s).toFixed(6));
    }
    if (state.thread >= 0) parts.push('thread=' + threads[state.thread][0]);
    try {
      history.replaceState(null, '', parts.length ? '#' + parts.join('&') : location.pathname + location.search);
    } catch (err) { /* some file: URLs refuse; the page still works */ }
  }
  function readFragment() {
    state.query = fragment('search');
    input.value = state.query;
    var r = /^([0-9.]+)-([0-9.]+)$/.exec(fragment('range'));
    state.range = null;
    if (r && hasUses) {
      var a = spanAt(+r[1]), b = Math.min(Math.ceil(+r[2] / uses.step_s - 1e-9) - 1, useSpans - 1);
      if (a <= b) state.range = [a, b];
    }
    var tid = fragment('thread');
    state.thread = -1;
    threads.forEach(function (t, i) { if (String(t[0]) === tid && hasUses) state.thread = i; });
    $('thread').value = String(state.thread);
    $('clear-range').hidden = !state.range;
  }

  // ---- Everything redrawn after a change ----

  function showTotals() {
    var b = D.bytes[0], text = (b < 1024 ? num(b) + ' B' : human(b) + ' (' + num(b) + ' B)') + ' in ' + num(D.count[0]) +
      (D.count[0] === 1 ? ' allocation' : ' allocations');
    var where = state.thread >= 0 ? ' on thread ' + threads[state.thread][0] +
      (threads[state.thread][1] ? ' (' + threads[state.thread][1] + ')' : '') : '';
    $('view-totals').textContent = 'Shown: ' + text + where;
    var ri = $('range-info');
    if (!state.range) {
      ri.textContent = hasUses ? 'Drag across the chart to pick a time range.' : '';
      return;
    }
    var from = state.range[0] * uses.step_s, to = (state.range[1] + 1) * uses.step_s;
    ri.textContent = 'Range ' + seconds(from) + ' \u2013 ' + seconds(to) + ': ' + text + where +
      (meta.view === 'leaks' ? ', allocated in it and still live at its end' : ', allocated in it');
  }

  function update() {
    var path = [];
    for (var a = zoom; a > 0; a = D.parent[a]) path.push(D.frame[a]);
    build();
    // Keep the zoom on the same call path when it still exists.
    zoom = 0;
    path.reverse().forEach(function (f) {
      var next = D.kids[zoom].find(function (c) { return D.frame[c] === f; });
      if (next !== undefined) zoom = next;
    });
    runSearch();
    showTotals();
    drawTimeline();
    keepFragment();
    render();
  }

  header();
  readFragment();
  wireTimeline();
  if (nodeCount[0] === 0 && nodeBytes[0] === 0) {
    var empty = el('p', '', 'No allocations in this view.');
    empty.id = 'empty';
    chart.before(empty);
  }

  chart.addEventListener('mousemove', function (ev) {
    var t = ev.target.closest('.f');
    if (!t) { tip.style.display = 'none'; return; }
    showTip(+t.dataset.i, ev);
  });
  chart.addEventListener('mouseleave', function () { tip.style.display = 'none'; });
  chart.addEventListener('click', function (ev) {
    var t = ev.target.closest('.f');
    if (t) zoomTo(+t.dataset.i);
  });
  $('crumbs').addEventListener('click', function (ev) {
    var t = ev.target.closest('a');
    if (t) zoomTo(+t.dataset.i);
  });
  $('reset').addEventListener('click', function () { zoomTo(0); });
  ['metric-bytes', 'metric-count'].forEach(function (id) {
    $(id).addEventListener('change', function (ev) {
      state.metric = ev.target.value;
      sortKids();
      showMatchInfo();
      render();
    });
  });
  $('thread').addEventListener('change', function (ev) {
    state.thread = +ev.target.value;
    update();
  });
  $('inverted').addEventListener('change', function (ev) {
    state.inverted = ev.target.checked;
    zoom = 0;
    update();
  });
  $('collapse').addEventListener('change', function (ev) {
    state.collapse = ev.target.checked;
    update();
  });
  var timer = 0;
  input.addEventListener('input', function () {
    clearTimeout(timer);
    timer = setTimeout(function () {
      state.query = input.value;
      runSearch();
      keepFragment();
      render();
    }, 150);
  });
  document.addEventListener('keydown', function (ev) {
    if (ev.key === 'Escape' && zoom !== 0) zoomTo(0);
    else if (ev.key === '/' && document.activeElement !== input) { ev.preventDefault(); input.focus(); }
  });
  window.addEventListener('hashchange', function () {
    readFragment();
    update();
  });
  var pending = false;
  window.addEventListener('resize', function () {
    if (pending) return;
    pending = true;
    requestAnimationFrame(function () { pending = false; drawTimeline(); render(); });
  });

  update();
  document.body.dataset.ready = '1';
})();
