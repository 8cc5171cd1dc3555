#!/usr/bin/env python3
"""Writes rsrmem's manual pages and shell completions from the sources they describe, so they
cannot drift from them:

  generate.py rsrmemctl.1 RSRMEMCTL VERSION OUT   the manual of rsrmemctl, from its --help and
                                                  each subcommand's --help
  generate.py librsrmem.7 ENV_TEMPLATE HEADER VERSION LIBRARY DROPIN OUT
                                                  the library's manual: every RSR_* setting with
                                                  its default (scripts/env.template), the C API
                                                  (rsrmem.h) and the installed files' paths
  generate.py bash RSRMEMCTL OUT                  bash completion
  generate.py zsh RSRMEMCTL OUT                   zsh completion
"""
import re
import subprocess
import sys


# ---- rsrmemctl's help, parsed ----

def run_help(binary, *words):
    out = subprocess.run([binary, *words, '--help'], capture_output=True, text=True, check=True)
    return out.stdout


class Help:
    """One --help text (CLI11's layout): a description, a usage line, options, positionals,
    subcommands, and a footer of free text."""

    LISTS = {'options': 'options', 'subcommands': 'subcommands', 'positionals': 'positionals'}

    def __init__(self, text):
        lines = text.rstrip('\n').split('\n')
        self.description = ''
        self.usage = ''
        self.options = []      # (spec, description)
        self.positionals = []  # (spec, description)
        self.subcommands = []  # (name, description)
        self.footer = []
        section = 'head'
        for line in lines:
            if line.startswith('Usage: '):
                self.usage = line[len('Usage: '):]
                section = 'usage'
            elif line == 'Options:':
                section = 'options'
            elif line == 'Subcommands:':
                section = 'subcommands'
            elif line == 'Positionals:':
                section = 'positionals'
            elif section == 'head':
                self.description += (' ' if self.description else '') + line.strip()
            elif section in self.LISTS and line.startswith('  ') and not line.startswith('   '):
                spec, _, desc = line[2:].partition('  ')
                getattr(self, self.LISTS[section]).append([spec.strip(), desc.strip()])
            elif section in self.LISTS and line.startswith('   ') and getattr(self, self.LISTS[section]):
                target = getattr(self, self.LISTS[section])
                target[-1][1] = (target[-1][1] + ' ' + line.strip()).strip()
            elif line.strip() == '' and section in ('options', 'subcommands', 'positionals', 'usage'):
                section = 'gap'
            elif section in ('gap', 'footer'):
                section = 'footer'
                self.footer.append(line)

    def flags(self):
        """Every option name (-o, --output) but --help."""
        out = []
        for spec, _ in self.options:
            for name in re.findall(r'(?:^|,)(-{1,2}[A-Za-z0-9][-A-Za-z0-9]*)', spec.split(' ')[0]):
                if name not in ('-h', '--help'):
                    out.append(name)
        return out


    def value_flags(self):
        """Option names that take a value ("--pid PID", "--format text|json")."""
        out = []
        for spec, _ in self.options:
            words = spec.split(' ')
            if len(words) > 1 and words[1] not in ('Excludes:', 'Needs:') and not words[1].startswith('['):
                out += [n for n in re.findall(r'(?:^|,)(-{1,2}[A-Za-z0-9][-A-Za-z0-9]*)', words[0])]
        return out


def load_commands(binary):
    top = Help(run_help(binary))
    subs = [(name, Help(run_help(binary, name))) for name, _ in top.subcommands]
    return top, subs


# ---- roff ----

def roff(text):
    text = text.replace('\\', '\\e').replace('-', '\\-')
    return re.sub(r'^([.\'])', r'\\&\1', text, flags=re.M)


def roff_block(lines):
    """Free text: paragraphs joined, indented lines and lists kept as they are."""
    out, para = [], []

    def flush():
        if para:
            out.append(roff(' '.join(para)))
            para.clear()
    for line in lines:
        if not line.strip():
            flush()
            out.append('.PP')
        elif line.startswith('  ') or line.rstrip().endswith(':'):
            flush()
            out.append('.br')
            out.append(roff(line.rstrip()))
        else:
            para.append(line.strip())
    flush()
    return out


def option_items(options):
    out = []
    for spec, desc in options:
        if spec.startswith('-h,--help'):
            continue
        out += ['.TP', '.B ' + roff(spec), roff(desc)]
    return out


def footer_split(footer):
    """The footer's exit-code list apart from the rest."""
    text, codes, in_codes = [], [], False
    for line in footer:
        if line.startswith('Exit codes:'):
            in_codes = True
            continue
        (codes if in_codes else text).append(line)
    return text, codes


def rsrmemctl_man(binary, version, out):
    top, subs = load_commands(binary)
    name_line = top.description.split(': ', 1)[-1]
    text, codes = footer_split(top.footer)
    page = ['.TH RSRMEMCTL 1 "" "rsrmem %s" "User Commands"' % roff(version),
            '.SH NAME', 'rsrmemctl \\- ' + roff(name_line),
            '.SH SYNOPSIS', '.B rsrmemctl', roff('[OPTIONS] COMMAND [ARGS...]'),
            '.SH DESCRIPTION',
            roff('rsrmemctl launches services under librsrmem.so (see librsrmem(7)), queries the '
                 'monitored ones over their control sockets, and reads profiling captures.')]
    page += roff_block(text)
    page += ['.SH OPTIONS'] + option_items(top.options)
    page += ['.SH COMMANDS']
    for name, h in subs:
        page += ['.SS ' + roff(name), roff(h.description), '.PP', '.B Usage:', roff(h.usage)]
        for title, entries in (('Arguments:', h.positionals), ('Options:', h.options)):
            items = option_items(entries)
            if items:
                page += ['.PP', title, '.RS'] + items + ['.RE']
        if h.footer and h.footer != top.footer:  # not the targets and exit codes again
            page += ['.PP'] + roff_block(h.footer)
    page += ['.SH EXIT STATUS']
    for line in codes:
        m = re.match(r'\s+(\S+)\s+(.*)', line)
        if m and not line.startswith('       '):
            page += ['.TP', '.B ' + roff(m.group(1)), roff(m.group(2))]
        elif line.strip():
            page.append(roff(line.strip()))
    page += ['.SH ENVIRONMENT',
             '.TP', '.B RSR_SOCKET_DIR',
             roff('Where the monitored processes\' control sockets are, as for the library.'),
             '.PP', roff('Every setting of the library: librsrmem(7).'),
             '.SH SEE ALSO', 'librsrmem(7)']
    write(out, page)


# ---- the library's manual ----

def settings(template):
    """(section, [(key, default, description)]) from scripts/env.template."""
    sections, comment = [], []
    for line in open(template, encoding='utf-8'):
        line = line.rstrip('\n')
        m = re.match(r'# --- (.*) ---$', line)
        if m:
            sections.append((m.group(1), []))
            comment = []
        elif line.startswith('#'):
            comment.append(line[1:].strip())
        elif '=' in line and sections:
            key, _, default = line.partition('=')
            sections[-1][1].append((key, default, ' '.join(comment)))
            comment = []
        else:
            comment = []
    return sections


def c_api(header):
    """([declaration, ...], comment) of the rsrmem_* functions a program calls; a function with
    no comment of its own shares the one before it (rsrmem_cache_hit and rsrmem_cache_miss)."""
    text = open(header, encoding='utf-8').read()
    out, last = [], 0
    for m in re.finditer(r'static inline ([^{;]*?\brsrmem_(?!entry_)\w+\([^)]*\))\s*\{', text):
        decl = ' '.join(m.group(1).split())
        comments = re.findall(r'/\*((?:[^*]|\*(?!/))*)\*/', text[last:m.start()])
        last = m.end()
        if comments:
            comment = ' '.join(l.strip(' *') for l in comments[-1].split('\n')).strip()
            out.append(([decl], comment))
        elif out:
            out[-1][0].append(decl)
    return out


def librsrmem_man(template, header, version, library, dropin, out):
    page = ['.TH LIBRSRMEM 7 "" "rsrmem %s" "Miscellaneous"' % roff(version),
            '.SH NAME', 'librsrmem \\- ' + roff('memory monitoring of a native service, loaded with LD_PRELOAD'),
            '.SH SYNOPSIS', '.B LD_PRELOAD=' + roff(library), '.I service',
            '.br', '.B rsrmemctl run \\-\\- ', '.I service',
            '.SH DESCRIPTION',
            roff('librsrmem.so intercepts the allocation API of the process it is loaded into, counts '
                 'live memory exactly, samples allocations with their stacks, aggregates growth per '
                 'call site, detects leaks while the service runs, and records profiling captures on '
                 'demand. rsrmemctl(1) talks to it over a Unix domain socket.'),
            '.SH SETTINGS',
            roff('Environment variables read when the library starts. A bad value is reported once '
                 'and the default is used; an empty default is derived at run time.')]
    for section, items in settings(template):
        page.append('.SS ' + roff(section))
        for key, default, desc in items:
            page += ['.TP', '.B ' + roff(key), roff(desc), '.br',
                     roff('Default: ' + (default if default else '(derived at run time)') + '.')]
    page += ['.SH C API',
             roff('#include <rsrmem.h> (pkg-config: rsrmem). The functions do nothing without the '
                  'library; the program links nothing extra.')]
    for decls, comment in c_api(header):
        page += ['.TP', '.B ' + roff(decls[0])]
        for decl in decls[1:]:
            page += ['.TQ', '.B ' + roff(decl)]
        page.append(roff(comment))
    heap = library.rsplit('/', 1)[0] + '/librsrmem-heap.so'
    page += ['.SH FILES',
             '.TP', '.I ' + roff(library),
             roff('The library. It is preloaded by this path: its directory is not on the '
                  "loader's search path."),
             '.TP', '.I ' + roff(heap),
             roff("The library's private heap (mimalloc), loaded from beside it."),
             '.TP', '.I ' + roff(dropin),
             roff('A systemd drop-in that puts a service under the library; the file says how to '
                  'install it.'),
             '.SH SEE ALSO', 'rsrmemctl(1)']
    write(out, page)


# ---- completions ----

def bash_completion(binary, out):
    top, subs = load_commands(binary)
    cases = []
    for name, h in subs:
        cases.append('    %s) words="%s" ;;' % (name, ' '.join(h.flags())))
    script = '''# bash completion for rsrmemctl (generated from its --help)
_rsrmemctl() {
  local cur=${COMP_WORDS[COMP_CWORD]} command="" i words
  for ((i = 1; i < COMP_CWORD; i++)); do
    case ${COMP_WORDS[i]} in
      --) return 0 ;;
      %s) ((i++)) ;;
      -*) ;;
      *) command=${COMP_WORDS[i]}; break ;;
    esac
  done
  if [ -z "$command" ]; then
    if [[ $cur == -* ]]; then
      COMPREPLY=($(compgen -W "%s" -- "$cur"))
    else
      COMPREPLY=($(compgen -W "%s" -- "$cur"))
    fi
    return 0
  fi
  case $command in
%s
    *) words="" ;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
  else
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}
complete -F _rsrmemctl rsrmemctl
''' % ('|'.join(top.value_flags()), ' '.join(top.flags()), ' '.join(n for n, _ in subs), '\n'.join(cases))
    write(out, [script.rstrip('\n')])


def zsh_quote(text):
    return text.replace("'", "'\\''").replace('[', '\\[').replace(']', '\\]').replace(':', '\\:')


def zsh_completion(binary, out):
    top, subs = load_commands(binary)
    commands = '\n'.join("    '%s:%s'" % (n, zsh_quote(h.description)) for n, h in subs)
    cases = []
    for name, h in subs:
        takes = set(h.value_flags())
        flags = ' '.join("'%s:value: '" % f if f in takes else "'%s'" % f for f in h.flags())
        cases.append("    %s) _arguments -s %s '*:file:_files' ;;" % (name, flags) if flags else
                     "    %s) _files ;;" % name)
    script = '''#compdef rsrmemctl
# zsh completion for rsrmemctl (generated from its --help)
_rsrmemctl() {
  local -a commands
  commands=(
%s
  )
  local i command=""
  for ((i = 2; i < CURRENT; i++)); do
    case ${words[i]} in
      %s) ((i++)) ;;
      -*) ;;
      *) command=${words[i]}; break ;;
    esac
  done
  if [[ -z $command ]]; then
    if [[ ${words[CURRENT]} == -* ]]; then
      compadd -- %s
    else
      _describe 'rsrmemctl command' commands
    fi
    return
  fi
  # The command's own arguments, as if it were the command line.
  shift $((i - 1)) words
  (( CURRENT -= i - 1 ))
  case $command in
%s
    *) _files ;;
  esac
}
_rsrmemctl "$@"
''' % (commands, '|'.join(top.value_flags()), ' '.join(top.flags()), '\n'.join(cases))
    write(out, [script.rstrip('\n')])


def write(path, lines):
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines) + '\n')


def main(argv):
    kind = argv[1] if len(argv) > 1 else ''
    if kind == 'rsrmemctl.1' and len(argv) == 5:
        rsrmemctl_man(argv[2], argv[3], argv[4])
    elif kind == 'librsrmem.7' and len(argv) == 8:
        librsrmem_man(*argv[2:8])
    elif kind == 'bash' and len(argv) == 4:
        bash_completion(argv[2], argv[3])
    elif kind == 'zsh' and len(argv) == 4:
        zsh_completion(argv[2], argv[3])
    else:
        sys.exit(__doc__)


if __name__ == '__main__':
    main(sys.argv)
