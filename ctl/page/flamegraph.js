(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('profile-data').textContent);
  var meta = data.meta, S = data.strings, F = data.frames, N = data.nodes;
  var n = N.length / 5, H = 18;
  var parent = new Int32Array(n), frame = new Int32Array(n), lines = new Int32Array(n), depth = new Int32Array(n);
  var bytes = new Float64Array(n), count = new Float64Array(n), end = new Int32Array(n);
  var first = new Int32Array(n).fill(-1), next = new Int32Array(n).fill(-1);
  var last = [];  // last[d]: the latest node at depth d
  for (var i = 0; i < n; i++) {
    depth[i] = N[5 * i]; frame[i] = N[5 * i + 1]; lines[i] = N[5 * i + 2];
    bytes[i] = N[5 * i + 3]; count[i] = N[5 * i + 4];
    parent[i] = depth[i] > 0 ? last[depth[i] - 1] : -1;
    last[depth[i]] = i;
    end[i] = i + 1;
  }
  for (i = n - 1; i > 0; i--) {
    var p = parent[i];
    next[i] = first[p]; first[p] = i;
    if (end[i] > end[p]) end[p] = end[i];
  }

  var $ = function (id) { return document.getElementById(id); };
  var chart = $('chart'), tip = $('tip'), info = $('match-info'), input = $('search');
  var metric = 'bytes', zoom = 0, query = '', matched = null, matchFrames = 0, matchBytes = 0, matchCount = 0;

  function fn(i) { return i === 0 ? 'all' : S[F[4 * frame[i]]]; }
  function file(i) { return i === 0 ? '' : S[F[4 * frame[i] + 1]]; }
  function mod(i) { return i === 0 ? '' : S[F[4 * frame[i] + 2]]; }
  function inl(i) { return i !== 0 && F[4 * frame[i] + 3] === 1; }
  function val(i) { return metric === 'bytes' ? bytes[i] : count[i]; }

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
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function header() {
    var views = { all: 'all allocations', leaks: 'still live at the end (--leaks)',
                  temporary: 'temporary allocations (--temporary)' };
    document.title = 'rsrmem flamegraph: ' + (meta.id || 'capture');
    $('title').textContent = 'rsrmem flamegraph: ' + (meta.id || 'capture');
    var started = meta.start_time > 0 ?
        new Date(meta.start_time * 1000).toISOString().replace('T', ' ').slice(0, 19) + ' UTC' : '';
    var facts = [
      ['service', meta.service], ['program', meta.program], ['pid', meta.pid ? String(meta.pid) : ''],
      ['kind', meta.kind], ['view', views[meta.view] || meta.view], ['started', started],
      ['duration', span(meta.duration_s)],
      ['this view', human(bytes[0]) + ' in ' + num(count[0]) + ' allocations, ' + num(meta.stacks) + ' stacks'],
      ['capture', num(meta.allocations) + ' allocations (' + human(meta.allocated_bytes) + '), ' +
                  num(meta.frees) + ' frees (' + human(meta.freed_bytes) + ')'],
      ['peak', human(meta.peak_bytes)],
      ['live at end', human(meta.live_bytes_at_end) + ' in ' + num(meta.live_blocks_at_end) + ' blocks'],
      ['threads', String(meta.threads)]];
    var box = $('facts');
    facts.forEach(function (f) {
      if (!f[1]) return;
      var e = el('span');
      e.appendChild(el('span', 'k', f[0] + ': '));
      e.appendChild(document.createTextNode(f[1]));
      box.appendChild(e);
    });
    var warn = $('warnings');
    if (meta.truncated)
      warn.appendChild(el('div', 'warn', 'Truncated: the capture stopped before its planned duration' +
          (meta.end_reason ? ' (' + meta.end_reason + ')' : '') + '; it covers the first ' +
          span(meta.duration_s) + ' only.'));
    if (meta.dropped_events > 0)
      warn.appendChild(el('div', 'warn', num(meta.dropped_events) +
          ' events were dropped because the capture writer fell behind: totals are lower bounds.'));
  }

  var colors = [];
  function color(i) {
    if (i === 0) return '#d6d6d6';
    var f = frame[i];
    if (colors[f]) return colors[f];
    var name = fn(i), h = 0;
    for (var k = 0; k < name.length; k++) h = (h * 31 + name.charCodeAt(k)) | 0;
    var r = ((h >>> 0) % 1000) / 1000, c;
    if (inl(i)) c = 'hsl(' + (175 + 25 * r).toFixed(0) + ',55%,' + (62 + 10 * r).toFixed(0) + '%)';
    else if (!file(i) && /^0x[0-9a-f]+$|\+0x[0-9a-f]+$/.test(name)) c = 'hsl(0,0%,' + (70 + 10 * r).toFixed(0) + '%)';
    else c = 'hsl(' + (8 + 42 * r).toFixed(0) + ',' + (75 + 15 * r).toFixed(0) + '%,' + (56 + 10 * r).toFixed(0) + '%)';
    colors[f] = c;
    return c;
  }

  function box(i, x, w, row, width, cls) {
    var e = el('div', 'f' + cls + (inl(i) ? ' inl' : '') + (matched && matched[i] ? ' m' : ''));
    e.style.cssText = 'left:' + (100 * x) + '%;width:' + (100 * w) + '%;top:' + (row * H) + 'px;background:' + color(i);
    e.dataset.i = i;
    if (w * width >= 22) e.textContent = fn(i);
    return e;
  }

  // Draws the zoomed frame full width under its (dimmed, full-width) callers, and below it every
  // descendant at least half a pixel wide.
  function render() {
    var width = chart.clientWidth || 1200, frag = document.createDocumentFragment();
    var anc = [];
    for (var a = parent[zoom]; a >= 0; a = parent[a]) anc.push(a);
    anc.reverse();
    anc.forEach(function (a, row) { frag.appendChild(box(a, 0, 1, row, width, ' anc')); });
    var total = val(zoom), rows = anc.length + 1, minW = 0.5 / width;
    var todo = [zoom], xs = [0];
    while (todo.length) {
      var i = todo.pop(), x = xs.pop();
      var w = total > 0 ? val(i) / total : 1, row = anc.length + depth[i] - depth[zoom];
      frag.appendChild(box(i, x, w, row, width, ''));
      if (row + 1 > rows) rows = row + 1;
      if (total <= 0) continue;
      for (var c = first[i]; c >= 0; c = next[c]) {
        var cw = val(c) / total;
        if (cw >= minW) { todo.push(c); xs.push(x); }
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
    for (var a = zoom; a >= 0; a = parent[a]) path.push(a);
    path.reverse().forEach(function (a, k) {
      if (k > 0) box.appendChild(el('span', 'sep', '\u203a'));
      var name = fn(a);
      if (name.length > 48) name = name.slice(0, 47) + '\u2026';
      var link = el(a === zoom ? 'b' : 'a', '', name);
      link.dataset.i = a;
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
    if (inl(i)) head.appendChild(el('span', 'tag', 'inlined'));
    tip.appendChild(head);
    function row(k, v) {
      var e = el('div');
      e.appendChild(el('span', 'k', k + ': '));
      e.appendChild(document.createTextNode(v));
      tip.appendChild(e);
    }
    if (i !== 0) {
      var at = lines[i] > 0 ? ':' + lines[i] : lines[i] < 0 ? ' (several lines)' : '';
      row('source', file(i) ? file(i) + at : 'unknown');
      row('module', mod(i) || 'unknown');
      if (inl(i) && parent[i] > 0) row('inlined into', fn(parent[i]));
    }
    row('bytes', human(bytes[i]) + ' (' + num(bytes[i]) + ' B)');
    row('allocations', num(count[i]));
    var share = pct(bytes[i], bytes[0]) + ' of bytes, ' + pct(count[i], count[0]) + ' of allocations';
    row('share', share);
    if (zoom !== 0) row('of the zoomed frame', pct(val(i), val(zoom)));
    tip.style.display = 'block';
    var x = ev.clientX + 14, y = ev.clientY + 14;
    if (x + tip.offsetWidth > window.innerWidth - 4) x = Math.max(4, ev.clientX - tip.offsetWidth - 14);
    if (y + tip.offsetHeight > window.innerHeight - 4) y = Math.max(4, ev.clientY - tip.offsetHeight - 14);
    tip.style.left = x + 'px';
    tip.style.top = y + 'px';
  }

  function showMatchInfo() {
    if (!matched) return;
    var share = metric === 'bytes' ? pct(matchBytes, bytes[0]) : pct(matchCount, count[0]);
    info.textContent = matchFrames + (matchFrames === 1 ? ' frame matches, ' : ' frames match, ') +
        share + ' of ' + (metric === 'bytes' ? 'bytes' : 'allocations');
  }

  // Marks every frame whose function matches; the share counts a matching frame's subtree once,
  // not again for matching frames inside it (recursion).
  function search(text) {
    query = text;
    if (input.value !== text) input.value = text;
    matched = null;
    info.textContent = '';
    if (text) {
      var test, re = /^\/(.+)\/$/.exec(text);
      if (re) {
        try { var rx = new RegExp(re[1], 'i'); test = function (s) { return rx.test(s); }; }
        catch (err) { info.textContent = 'invalid regular expression'; }
      } else {
        var t = text.toLowerCase();
        test = function (s) { return s.toLowerCase().indexOf(t) >= 0; };
      }
      if (test) {
        var frameMatch = new Uint8Array(F.length / 4);
        for (var f = 0; f < frameMatch.length; f++) frameMatch[f] = test(S[F[4 * f]]) ? 1 : 0;
        matched = new Uint8Array(n);
        matchFrames = 0; matchBytes = 0; matchCount = 0;
        for (var i = 1; i < n; i++) if (frameMatch[frame[i]]) { matched[i] = 1; matchFrames++; }
        for (i = 1; i < n;) {
          if (matched[i]) { matchBytes += bytes[i]; matchCount += count[i]; i = end[i]; } else i++;
        }
        showMatchInfo();
      }
    }
    try {
      history.replaceState(null, '', text ? '#search=' + encodeURIComponent(text) : location.pathname + location.search);
    } catch (err) { /* some file: URLs refuse; the search still works */ }
    render();
  }

  function fragmentSearch() {
    var m = /(?:^#|&)search=([^&]*)/.exec(location.hash);
    if (!m) return '';
    try { return decodeURIComponent(m[1]); } catch (err) { return m[1]; }
  }

  header();
  if (count[0] === 0 && bytes[0] === 0) {
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
      metric = ev.target.value;
      showMatchInfo();
      render();
    });
  });
  var timer = 0;
  input.addEventListener('input', function () {
    clearTimeout(timer);
    timer = setTimeout(function () { search(input.value); }, 150);
  });
  document.addEventListener('keydown', function (ev) {
    if (ev.key === 'Escape' && zoom !== 0) zoomTo(0);
    else if (ev.key === '/' && document.activeElement !== input) { ev.preventDefault(); input.focus(); }
  });
  window.addEventListener('hashchange', function () {
    var text = fragmentSearch();
    if (text !== query) search(text);
  });
  var pending = false;
  window.addEventListener('resize', function () {
    if (pending) return;
    pending = true;
    requestAnimationFrame(function () { pending = false; render(); });
  });

  var initial = fragmentSearch();
  if (initial) search(initial); else render();
  document.body.dataset.ready = '1';
})();
