# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The fleet report as CSV, Markdown and one self-contained HTML page.

Input is what _fleet_report.build_report() returns. Markdown and HTML show the same sections, defined once
(_sections: title, columns with the kind of their values, rows); each format only decides how a kind looks.
Host names, account names and paths come from the fleet and are treated as hostile: CSV cells that a
spreadsheet would run as a formula are prefixed with an apostrophe, Markdown cells are backslash-escaped,
HTML is escaped everywhere and the page loads nothing (a Content-Security-Policy forbids any fetch).
"""

from __future__ import annotations

import csv
import html
import io
import json
import re

from ansible_collections.gofleet.cache.plugins.module_utils._units import OptionError, format_bytes
from ansible_collections.gofleet.cache.plugins.plugin_utils._fleet_report import (
    OK, check_report, kinds_in_order, number_text, summary_lines)

CSV_TABLES = ('caches', 'hosts', 'selections')
CACHE_COLUMNS = ('host', 'status', 'reason', 'user', 'kind', 'path', 'real_path', 'source', 'exists', 'valid',
                 'counted', 'bytes', 'disk_bytes', 'files', 'entries', 'oldest_used', 'newest_used',
                 'oldest_used_age_s', 'mount', 'free_bytes', 'free_pct', 'inodes_used_pct', 'reclaim_bytes',
                 'errors_total')
HOST_COLUMNS = ('host', 'status', 'reason', 'groups', 'users', 'caches', 'bytes', 'disk_bytes', 'files', 'entries',
                'min_free_pct', 'max_inodes_used_pct', 'short', 'reclaim_bytes', 'previous_bytes', 'growth_bytes',
                'env_drift', 'conflicts', 'errors_total')
SELECTION_COLUMNS = ('selection', 'expression', 'index', 'value')
# Spreadsheets run a cell starting with one of these as a formula (CSV injection).
_FORMULA_START = ('=', '+', '-', '@', '\t', '\r')
# Characters with a meaning inside a GFM table cell (the rest only matter at the start of a line).
_MARKDOWN_SPECIAL = re.compile(r'([\\`*_\[\]<>|~&])')
# Kinds of column values: how each format shows them. Numeric kinds align right and sort as numbers.
# TEXT cells are names and paths, kept on one line in HTML (a name must not break at its hyphens); PROSE cells
# (reasons, notes) wrap.
TEXT, PROSE, COUNT, SIZE, PCT, SIGNED = 'text', 'prose', 'count', 'size', 'pct', 'signed'
NUMERIC = (COUNT, SIZE, PCT, SIGNED)


# --------------------------------------------------------------------------- CSV


def _csv_cell(value):
    if value is None:
        return ''
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        value = ' '.join(str(item) for item in value)
    value = str(value)
    return "'" + value if value.startswith(_FORMULA_START) else value


def render_csv(report, table='caches'):
    """CSV (RFC 4180, CRLF) of one table.

    caches: one row per host, account and kind (hosts without facts get one row with their status and
    reason); hosts: one row per host; selections: one row per selection result item (value as JSON).
    """
    report = check_report(report)
    if table not in CSV_TABLES:
        raise OptionError('table', table, 'expected one of %s' % ', '.join(CSV_TABLES))
    out = io.StringIO()
    writer = csv.writer(out)
    if table == 'caches':
        writer.writerow(CACHE_COLUMNS)
        by_host = {}
        for cache in report['caches']:
            by_host.setdefault(cache['host'], []).append(cache)
        for host in report['hosts']:
            rows = by_host.get(host['host']) or [{}]
            for cache in rows:
                row = dict(cache, host=host['host'], status=host['status'], reason=host['reason'])
                writer.writerow([_csv_cell(row.get(column)) for column in CACHE_COLUMNS])
    elif table == 'hosts':
        writer.writerow(HOST_COLUMNS)
        for host in report['hosts']:
            row = dict(host, reclaim_bytes=(host['reclaim'] or {}).get('bytes'))
            writer.writerow([_csv_cell(row.get(column)) for column in HOST_COLUMNS])
    else:
        writer.writerow(SELECTION_COLUMNS)
        for name, selection in report['selections'].items():
            result = selection['result']
            items = enumerate(result) if isinstance(result, list) else [('', result)]
            for index, value in items:
                writer.writerow([_csv_cell(name), _csv_cell(selection['expression']), index,
                                 json.dumps(value, sort_keys=True)])
    return out.getvalue()


# --------------------------------------------------------------------------- sections (Markdown and HTML)


class Column(object):
    """A table column: its header, the row key (or a function of the row) and the kind of its values."""

    def __init__(self, header, value, kind=TEXT):
        self.header, self.value, self.kind = header, value, kind

    def of(self, row):
        return self.value(row) if callable(self.value) else row.get(self.value)


class Section(object):
    """A titled table; empty says so when there are no rows; flagged rows are highlighted; notes follow it."""

    def __init__(self, title, empty, columns, rows, flagged=None, notes=()):
        self.title, self.empty, self.columns, self.rows = title, empty, columns, rows
        self.flagged, self.notes = flagged, notes


def cell_text(kind, value):
    """A value as text: sizes in binary units, counts with thousands separators, percentages with %."""
    if value is None:
        return ''
    if kind == SIZE:
        return format_bytes(value)
    if kind == SIGNED:
        return ('+' if value >= 0 else '-') + format_bytes(abs(value))
    if kind == PCT:
        return '%s%%' % number_text(value)
    if kind == COUNT and isinstance(value, int):
        return '{:,}'.format(value)
    if isinstance(value, (list, tuple)):
        return ' '.join(str(item) for item in value)
    return str(value)


def _short_reasons(row):
    return row['reason'] or '; '.join(row['short'])


def _failed_or_short(row):
    return row.get('status', OK) != OK or bool(row.get('short'))


def _sections(report, markdown):
    """The report's tables in order. Markdown gets the largest hosts (a file to read); HTML every host and cache."""
    totals, thresholds, reclaim, growth = report['totals'], report['thresholds'], report['reclaim'], report['growth']
    kind_rows = [dict(counts, kind=kind) for kind, counts in kinds_in_order(totals['by_kind'])]
    sections = [Section('Totals by kind', 'No caches.', [
        Column('Kind', 'kind'), Column('Caches', 'caches', COUNT), Column('Size', 'bytes', SIZE),
        Column('Files', 'files', COUNT), Column('Entries', 'entries', COUNT)],
        kind_rows + [dict(totals, kind='all')])]
    if markdown:
        hosts = dict((row['host'], row) for row in report['hosts'])
        sections.append(Section('Largest hosts', 'No host has facts.', [
            Column('Host', 'host'), Column('Size', 'bytes', SIZE), Column('Caches', 'caches', COUNT),
            Column('Files', 'files', COUNT), Column('Free (lowest)', 'min_free_pct', PCT),
            Column('Inodes used (highest)', 'max_inodes_used_pct', PCT)],
            [hosts[item['host']] for item in report['largest']['hosts']]))
    else:
        sections.append(Section('Hosts', 'No hosts.', [
            Column('Host', 'host'), Column('Status', 'status'), Column('Groups', 'groups'),
            Column('Size', 'bytes', SIZE), Column('Caches', 'caches', COUNT), Column('Files', 'files', COUNT),
            Column('Entries', 'entries', COUNT), Column('Free (lowest)', 'min_free_pct', PCT),
            Column('Inodes used (highest)', 'max_inodes_used_pct', PCT),
            Column('Reclaim', lambda row: (row['reclaim'] or {}).get('bytes'), SIZE),
            Column('Growth', 'growth_bytes', SIGNED), Column('Env drift', 'env_drift', COUNT),
            Column('Note', _short_reasons, PROSE)], report['hosts'], flagged=_failed_or_short,
            notes=() if growth is not None else (
                'Growth is empty: it compares with an earlier report, given as fleet_report_previous (the '
                'report.json of an earlier run).',)))
        sections.append(Section('Caches', 'No caches.', [
            Column('Host', 'host'), Column('Account', 'user'), Column('Kind', 'kind'),
            Column('Path', lambda row: row['path'] if row['counted'] else '%s (counted above)' % row['path']),
            Column('Exists', lambda row: 'yes' if row['exists'] else 'missing'),
            Column('Source', 'source'), Column('Size', 'bytes', SIZE), Column('Files', 'files', COUNT),
            Column('Entries', 'entries', COUNT), Column('Oldest use', 'oldest_used'), Column('Mount', 'mount'),
            Column('Free', 'free_pct', PCT), Column('Reclaim', 'reclaim_bytes', SIZE)], report['caches']))
    sections.append(Section('Largest accounts', 'No caches.', [
        Column('Host', 'host'), Column('Account', 'user'), Column('Size', 'bytes', SIZE)]
        + [Column(kind.capitalize(), lambda row, kind=kind: row['by_kind'].get(kind), SIZE)
           for kind in ('build', 'module', 'fuzz')], report['largest']['users']))
    sections.append(Section('Largest modules', 'No module cache lists its largest modules.', [
        Column('Module', 'module'), Column('Size', 'bytes', SIZE), Column('Versions', 'versions', COUNT),
        Column('Hosts', 'hosts', COUNT)], report['largest']['modules']))
    if reclaim['mode']:
        sections.append(Section(
            'Reclaimable under the policy (dry run)' if reclaim['mode'] == 'check' else 'Removed by the prune',
            'Nothing.', [Column('Host', 'host'), Column('Size', 'bytes', SIZE), Column('Units', 'entries', COUNT),
                         Column('Before', 'before_bytes', SIZE), Column('After', 'after_bytes', SIZE),
                         Column('Errors', 'errors_total', COUNT)], reclaim['hosts']))
    sections.append(Section(
        'Hosts short of space or inodes (free space under %s, inodes used over %s%%)' % (
            thresholds['min_free'], number_text(thresholds['max_inodes_used_pct'])), 'None.', [
            Column('Host', 'host'), Column('Mount', 'mount'), Column('Free', 'free_bytes', SIZE),
            Column('Free %', 'free_pct', PCT), Column('Inodes used %', 'inodes_used_pct', PCT),
            Column('Why', lambda row: '; '.join(row['short']), PROSE)], report['short_of_space']))
    if report['desired_env']:
        sections.append(Section('Go environment differing from the desired one', 'None: every account matches.', [
            Column('Host', 'host'), Column('Account', 'user'), Column('Variable', 'var'), Column('Value', 'value'),
            Column('Desired', 'desired'), Column('Source', 'source')], report['env_drift']))
    sections.append(Section('Environment variables hiding go env file values', 'None.', [
        Column('Host', 'host'), Column('Account', 'user'), Column('Variable', 'var'), Column('Value', 'value'),
        Column('Hidden value', 'shadowed_value')], report['conflicts']))
    sections.append(Section('Hosts without facts', 'None: every host reported.', [
        Column('Host', 'host'), Column('Status', 'status'), Column('Reason', 'reason', PROSE)], report['failed'],
        flagged=_failed_or_short))
    if growth is not None:
        notes = ['%s: %s' % (label, ', '.join(names)) for label, names in (
            ('New', growth['new_hosts']), ('No longer reported', growth['no_longer_reported'])) if names]
        sections.append(Section('Growth since %s' % growth['previous_generated_at'], 'No host to compare.', [
            Column('Host', 'host'), Column('Now', 'bytes', SIZE), Column('Before', 'previous_bytes', SIZE),
            Column('Growth', 'growth_bytes', SIGNED)], growth['hosts'], notes=notes))
    return sections


# --------------------------------------------------------------------------- Markdown


def md_escape(value):
    """One Markdown table cell: no line breaks, no table or inline syntax, no raw HTML."""
    if value is None:
        return ''
    text = ' '.join(str(value).split())
    return _MARKDOWN_SPECIAL.sub(r'\\\1', text)


def _md_table(section):
    """A pipe table padded to column width, numbers right-aligned: readable as plain text too."""
    numeric = [column.kind in NUMERIC for column in section.columns]
    cells = [[md_escape(cell_text(column.kind, column.of(row))) for column in section.columns] for row in section.rows]
    headers = [md_escape(column.header) for column in section.columns]
    widths = [max([len(header), 3] + [len(row[index]) for row in cells]) for index, header in enumerate(headers)]

    def line(values):
        return '| ' + ' | '.join(value.rjust(widths[index]) if numeric[index] else value.ljust(widths[index])
                                 for index, value in enumerate(values)) + ' |'

    rule = '|' + '|'.join(('-' * (width + 1) + ':') if numeric[index] else ('-' * (width + 2))
                          for index, width in enumerate(widths)) + '|'
    return [line(headers), rule] + [line(row) for row in cells]


def _md_fence(text):
    """A code fence longer than any backtick run inside text, so text cannot close it."""
    longest = max([0] + [len(run) for run in re.findall(r'`+', text)])
    return '`' * max(3, longest + 1)


def render_markdown(report):
    """The report as Markdown: summary, the sections, each selection with its expression and JSON result."""
    report = check_report(report)
    lines = ['# ' + md_escape(report['title']), '', 'Generated %s.' % md_escape(report['generated_at']), '']
    lines.extend('- ' + md_escape(line) for line in summary_lines(report))
    for section in _sections(report, markdown=True):
        lines.extend(['', '## ' + md_escape(section.title), ''])
        lines.extend(_md_table(section) if section.rows else [section.empty])
        for note in section.notes:
            lines.extend(['', md_escape(note)])
    for name, selection in report['selections'].items():
        text = json.dumps(selection['result'], indent=2, sort_keys=True)
        fence = _md_fence(text + selection['expression'])
        lines.extend(['', '## Selection ' + md_escape(name), '', fence, selection['expression'], fence, '',
                      fence + 'json', text, fence])
    return '\n'.join(lines) + '\n'


# --------------------------------------------------------------------------- HTML

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1b1f24;background:#fff}
h1{font-size:1.6em}h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;margin:.5em 0;min-width:40%}
th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa;position:sticky;top:0}
th button{all:unset;cursor:pointer;font-weight:600}
th[aria-sort=ascending] button::after{content:" \\25B2"}th[aria-sort=descending] button::after{content:" \\25BC"}
td.n,td.t{white-space:nowrap}td.n{text-align:right}
td.size{position:relative;min-width:9em}
td.size .bar{position:absolute;left:0;top:2px;bottom:2px;background:#9ecbff;opacity:.55}
td.size .v{position:relative}
tr.bad td{background:#fff0f0}
.summary li{margin:.2em 0}.muted{color:#57606a}
pre{background:#f6f8fa;padding:.6em;overflow:auto;max-height:30em}
"""

# Sorts a table by the clicked column: numeric cells carry data-v, others sort by text.
_SCRIPT = """
(function(){
document.querySelectorAll("table.sortable").forEach(function(table){
  table.querySelectorAll("th").forEach(function(th,index){
    var button=th.querySelector("button");
    if(!button){return;}
    button.addEventListener("click",function(){
      var body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows);
      var ascending=th.getAttribute("aria-sort")!=="ascending";
      table.querySelectorAll("th").forEach(function(other){other.removeAttribute("aria-sort");});
      th.setAttribute("aria-sort",ascending?"ascending":"descending");
      function key(row){var cell=row.cells[index];if(!cell){return "";}
        var v=cell.getAttribute("data-v");return v===null?cell.textContent.toLowerCase():parseFloat(v);}
      rows.sort(function(a,b){var x=key(a),y=key(b);
        if(typeof x==="number"&&typeof y==="number"){return ascending?x-y:y-x;}
        x=String(x);y=String(y);return ascending?x.localeCompare(y):y.localeCompare(x);});
      rows.forEach(function(row){body.appendChild(row);});
    });
  });
});
})();
"""

_CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


def _e(value):
    return html.escape('' if value is None else str(value), quote=True)


def _html_table(section):
    """A sortable table: numeric cells carry their value in data-v; sizes get a bar on one scale for the whole
    table (its largest size), so that bars in different columns compare."""
    largest = max([column.of(row) or 0 for column in section.columns if column.kind == SIZE
                   for row in section.rows] + [0])
    out = ['<table class="sortable"><thead><tr>']
    out.extend('<th scope="col"><button type="button">%s</button></th>' % _e(column.header)
               for column in section.columns)
    out.append('</tr></thead><tbody>')
    for row in section.rows:
        out.append('<tr class="bad">' if section.flagged and section.flagged(row) else '<tr>')
        for column in section.columns:
            value = column.of(row)
            text = _e(cell_text(column.kind, value))
            if column.kind == TEXT:
                out.append('<td class="t">%s</td>' % text)
            elif column.kind not in NUMERIC or value is None:
                out.append('<td>%s</td>' % text)
            elif column.kind == SIZE:
                share = (100.0 * value / largest) if largest else 0.0
                out.append('<td class="n size" data-v="%s"><span class="bar" style="width:%.1f%%"></span>'
                           '<span class="v">%s</span></td>' % (_e(value), max(0.0, min(share, 100.0)), text))
            else:
                out.append('<td class="n" data-v="%s">%s</td>' % (_e(value), text))
        out.append('</tr>')
    out.append('</tbody></table>')
    return ''.join(out)


def render_html(report):
    """One self-contained page: sortable tables (click a header), bars for sizes, no external assets."""
    report = check_report(report)
    out = ['<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
           '<meta http-equiv="Content-Security-Policy" content="%s">' % _e(_CSP),
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           '<title>%s</title><style>%s</style></head><body>' % (_e(report['title']), _STYLE),
           '<h1>%s</h1><p class="muted">Generated %s</p>' % (_e(report['title']), _e(report['generated_at'])),
           '<ul class="summary">%s</ul>' % ''.join('<li>%s</li>' % _e(line) for line in summary_lines(report))]
    for section in _sections(report, markdown=False):
        out.append('<h2>%s</h2>' % _e(section.title))
        out.append(_html_table(section) if section.rows else '<p class="muted">%s</p>' % _e(section.empty))
        out.extend('<p>%s</p>' % _e(note) for note in section.notes)
    for name, selection in report['selections'].items():
        out.append('<h2>Selection %s</h2><p><code>%s</code></p><pre>%s</pre>' % (
            _e(name), _e(selection['expression']), _e(json.dumps(selection['result'], indent=2, sort_keys=True))))
    out.append('<script>%s</script></body></html>\n' % _SCRIPT)
    return '\n'.join(out)
