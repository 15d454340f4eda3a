# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""CSV, Markdown and HTML of the fleet report: shape, content, and hostile names from the fleet."""

from __future__ import annotations

import csv
import io
import json
import re
from html.parser import HTMLParser

import pytest

from ansible_collections.gofleet.cache.plugins.module_utils._units import OptionError
from ansible_collections.gofleet.cache.plugins.plugin_utils import _fleet_report_render as render
from ansible_collections.gofleet.cache.plugins.plugin_utils._fleet_report import build_report, collect_hosts
from ansible_collections.gofleet.cache.tests.unit.plugins.plugin_utils.fleetfacts import (
    expected_host_bytes, filesystem, host_facts, hostvars_for)

HOSTILE_HOST = 'evil"><script>alert(1)</script>|`x`*[y](http://e.example/)'
HOSTILE_USER = '=HYPERLINK("http://e.example/")'
HOSTILE_PATH = '/home/x/<img src=x onerror=alert(1)>|tab\there\nnewline & &amp; ```'


@pytest.fixture(scope='module')
def report():
    hostvars = hostvars_for(3)
    facts = host_facts(5, users=(HOSTILE_USER,), fs=filesystem(100 * 2 ** 30, 2 * 2 ** 30, 95.0))
    facts['caches'][0]['path'] = facts['caches'][0]['real_path'] = HOSTILE_PATH
    hostvars[HOSTILE_HOST] = {'ansible_facts': {'go_cache': facts}, 'group_names': ['<b>group</b>']}
    hostvars['dark'] = {'gofleet_facts_result': {'unreachable': True, 'msg': 'ssh: <timeout> | "quoted"'}}
    hostvars['build-0000']['gofleet_prune_results'] = {
        'removed_bytes': 1024, 'removed_entries': 2, 'before_bytes': 4096, 'after_bytes': 3072, 'errors_total': 0,
        'busy': [], 'caches': [{'kind': 'build', 'real_path': '/home/runner/.cache/go-build', 'removed_bytes': 1024}]}
    previous = build_report(collect_hosts(hostvars_for(2)), generated_at='2026-11-01T00:00:00Z')
    return build_report(collect_hosts(hostvars, env_vars=['GOPROXY']), generated_at='2026-11-22T00:00:00Z',
                        prune_check_mode=True, previous=previous, desired_env={'GOPROXY': 'off'},
                        select={'heavy': 'hosts[?max_inodes_used_pct > `90`].host',
                                'first': 'hosts[0].host', 'fence': "'````'"})


# --------------------------------------------------------------------------- CSV


def parse_csv(text):
    return list(csv.DictReader(io.StringIO(text, newline='')))


def test_csv_one_row_per_host_account_and_kind(report):
    text = render.render_csv(report)
    assert text.startswith(','.join(render.CACHE_COLUMNS) + '\r\n')
    rows = parse_csv(text)
    ok_rows = [row for row in rows if row['status'] == 'ok']
    assert len(ok_rows) == len(report['caches']) == 3 * 6 + 3
    assert sum(int(row['bytes']) for row in ok_rows if row['counted'] == 'true') == report['totals']['bytes']
    runner = [row for row in ok_rows if row['host'] == 'build-0000' and row['user'] == 'runner']
    assert [row['kind'] for row in runner] == ['build', 'module', 'fuzz']
    assert runner[0]['reclaim_bytes'] == '1024' and runner[1]['reclaim_bytes'] == ''
    assert int(runner[0]['bytes']) == 1024 * 1024


def test_csv_lists_hosts_without_facts(report):
    dark = [row for row in parse_csv(render.render_csv(report)) if row['host'] == 'dark']
    assert len(dark) == 1
    assert dark[0]['status'] == 'unreachable' and dark[0]['reason'] == 'ssh: <timeout> | "quoted"'
    assert dark[0]['bytes'] == '' and dark[0]['user'] == ''


def test_csv_keeps_hostile_values_intact_but_never_a_formula(report):
    rows = [row for row in parse_csv(render.render_csv(report)) if row['host'] == HOSTILE_HOST]
    assert len(rows) == 3
    # a spreadsheet would run =HYPERLINK(...): the cell starts with an apostrophe instead
    assert all(row['user'] == "'" + HOSTILE_USER for row in rows)
    assert rows[0]['path'] == HOSTILE_PATH  # newlines and quotes survive CSV quoting


def test_csv_hosts_table(report):
    rows = parse_csv(render.render_csv(report, 'hosts'))
    assert [row['host'] for row in rows] == [row['host'] for row in report['hosts']]
    first = rows[0]
    assert first['host'] == 'build-0000' and first['reclaim_bytes'] == '1024'
    assert int(first['bytes']) == expected_host_bytes(0) and first['growth_bytes'] == '0'
    assert rows[[row['host'] for row in rows].index('build-0002')]['growth_bytes'] == ''  # new since then


def test_csv_selections_table(report):
    rows = parse_csv(render.render_csv(report, 'selections'))
    assert [(row['selection'], row['index'], json.loads(row['value'])) for row in rows] == [
        ('heavy', '0', HOSTILE_HOST), ('first', '', 'build-0000'), ('fence', '', '````')]
    assert rows[0]['expression'] == 'hosts[?max_inodes_used_pct > `90`].host'


def test_csv_rejects_an_unknown_table(report):
    with pytest.raises(OptionError) as caught:
        render.render_csv(report, 'modules')
    assert caught.value.option == 'table' and caught.value.value == 'modules'


# --------------------------------------------------------------------------- Markdown


def unescaped_pipes(line):
    return len(re.findall(r'(?<!\\)\|', line))


def tables(markdown):
    """Lists of consecutive table lines."""
    found, current = [], []
    for line in markdown.splitlines():
        if line.startswith('|'):
            current.append(line)
        elif current:
            found.append(current)
            current = []
    return found + ([current] if current else [])


def test_markdown_tables_keep_their_shape(report):
    markdown = render.render_markdown(report)
    found = tables(markdown)
    assert len(found) >= 9
    for table in found:
        columns = unescaped_pipes(table[0])
        assert all(unescaped_pipes(line) == columns for line in table), table
        assert re.match(r'^\|(-+:?\|)+$', table[1]), table[1]
        assert len(set(len(line) for line in table)) == 1, table  # padded: reads well in a terminal


def test_markdown_sections_and_numbers(report):
    markdown = render.render_markdown(report)
    for heading in ('# Go cache fleet report', '## Totals by kind', '## Largest hosts', '## Largest accounts',
                    '## Largest modules', '## Reclaimable under the policy (dry run)',
                    '## Hosts short of space or inodes (free space under 10%, inodes used over 90%)',
                    '## Go environment differing from the desired one', '## Hosts without facts',
                    '## Growth since 2026-11-01T00:00:00Z', '## Selection heavy'):
        assert '\n' + heading + '\n' in '\n' + markdown, heading
    assert '- 5 hosts: 4 with facts, 1 failed, unreachable or without facts\n' in markdown
    assert '| dark ' in markdown and 'unreachable' in markdown
    assert 'New: build\\_0002' not in markdown and 'New: build-0002, ' in markdown


def test_markdown_escapes_hostile_values(report):
    # selection results are JSON inside code fences, where Markdown shows text as it is
    markdown = re.sub(r'\n(`{3,})(json)?\n.*?\n\1\n', '\n', render.render_markdown(report), flags=re.S)
    assert '## Selection heavy\n\n\n' in markdown
    assert '<script>' not in markdown and '<img' not in markdown and '<b>' not in markdown
    assert 'evil"&gt;' not in markdown  # escaped by backslashes, not entities
    assert 'evil"\\><script\\>' not in markdown
    assert 'evil"\\>\\<script\\>alert(1)\\</script\\>\\|\\`x\\`\\*\\[y\\](http://e.example/)' in markdown
    assert render.md_escape(HOSTILE_PATH) == (
        '/home/x/\\<img src=x onerror=alert(1)\\>\\|tab here newline \\& \\&amp; \\`\\`\\`')
    assert render.md_escape(None) == ''


def test_markdown_selection_fences_cannot_be_closed_from_inside(report):
    markdown = render.render_markdown(report)
    section = markdown.split('## Selection fence\n', 1)[1]
    assert section.startswith('\n`````\n') and '`````json\n"````"\n`````' in section


# --------------------------------------------------------------------------- HTML


class PageParser(HTMLParser):
    def __init__(self):
        HTMLParser.__init__(self, convert_charrefs=True)
        self.tags, self.attrs, self.scripts, self.styles, self.text = [], [], [], [], []
        self._in = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend((tag, name, value) for name, value in attrs)
        self._in = tag

    def handle_endtag(self, tag):
        self._in = None

    def handle_data(self, data):
        if self._in == 'script':
            self.scripts.append(data)
        elif self._in == 'style':
            self.styles.append(data)
        else:
            self.text.append(data)


@pytest.fixture(scope='module')
def page(report):
    text = render.render_html(report)
    parser = PageParser()
    parser.feed(text)
    parser.close()
    return text, parser


def test_html_loads_nothing_from_anywhere(page):
    text, parser = page
    assert parser.tags.count('script') == 1 and parser.tags.count('style') == 1
    assert not set(parser.tags) & {'link', 'img', 'iframe', 'object', 'embed', 'base', 'form', 'svg'}
    for tag, name, value in parser.attrs:
        assert name not in ('src', 'href', 'srcset', 'action', 'background') and not name.startswith('on'), (tag, name)
        if name == 'style':
            assert re.match(r'^width:\d+\.\d%$', value), value
    assert 'url(' not in ''.join(parser.styles) and '@import' not in ''.join(parser.styles)
    assert 'fetch(' not in ''.join(parser.scripts) and 'XMLHttpRequest' not in ''.join(parser.scripts)
    csp = [value for tag, name, value in parser.attrs if tag == 'meta' and name == 'content' and 'default-src' in value]
    assert csp == ["default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; base-uri 'none'; "
                   "form-action 'none'"]
    assert text.startswith('<!DOCTYPE html>')


def test_html_escapes_hostile_values(page):
    text, parser = page
    assert '<script>alert(1)' not in text and '<img src=x' not in text and '<b>group' not in text
    assert 'evil&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;' in text
    visible = ''.join(parser.text)
    assert HOSTILE_HOST in visible and '<b>group</b>' in visible and HOSTILE_USER in visible
    assert 'ssh: <timeout> | "quoted"' in visible


def test_html_tables_sort_and_draw_bars(page, report):
    text, parser = page
    assert ('table', 'class', 'sortable') in parser.attrs
    bars = [float(value[6:-1]) for tag, name, value in parser.attrs if name == 'style']
    assert bars and max(bars) == 100.0 and min(bars) >= 0
    sort_values = [value for tag, name, value in parser.attrs if name == 'data-v']
    assert str(report['totals']['by_kind']['module']['bytes']) in sort_values
    assert 'Reclaimable under the policy (dry run)' in text and 'Growth since 2026-11-01T00:00:00Z' in text
    assert 'addEventListener("click"' in parser.scripts[0]


def test_renderers_refuse_other_input():
    for function in (render.render_csv, render.render_markdown, render.render_html):
        with pytest.raises(OptionError, match='expected the report built by gofleet.cache.fleet_report_data'):
            function({'report_version': 0})


def missing_cache_report(previous=None):
    hostvars = hostvars_for(1)
    facts = hostvars['build-0000']['ansible_facts']['go_cache']
    fuzz = [item for item in facts['caches'] if item['kind'] == 'fuzz'][0]
    fuzz.update(exists=False, valid=False, bytes=0, files=0, entries=0, filesystem=None)
    return build_report(collect_hosts(hostvars), generated_at='2026-11-22T00:00:00Z', previous=previous)


def test_missing_caches_are_counted_apart_and_shown_as_missing():
    report = missing_cache_report()
    existing = [row for row in report['caches'] if row['counted'] and row['exists']]
    assert report['totals']['caches'] == len(existing) and report['totals']['missing_caches'] == 1
    assert report['totals']['by_kind']['fuzz']['caches'] == 1  # the other account's fuzz cache exists
    (line,) = [line for line in render.summary_lines(report) if 'in ' in line and 'cache' in line][:1]
    assert line.endswith('; 1 cache located but not created yet'), line
    text = render.render_html(report)
    assert '<th scope="col"><button type="button">Exists</button></th>' in text
    assert '<td class="t">missing</td>' in text


def test_html_keeps_names_whole_wraps_prose_and_draws_bars_on_one_scale_per_table(page, report):
    text, _parser = page
    assert 'td.n,td.t{white-space:nowrap}' in text
    assert '<td class="t">runner</td>' in text  # a name: one line
    assert '<td>ssh: &lt;timeout&gt; | &quot;quoted&quot;</td>' in text  # a reason: wraps
    # Largest accounts: Size, Build, Module, Fuzz share one scale: only the largest size in the table is 100%
    accounts = text.split('<h2>Largest accounts</h2>')[1].split('</table>')[0]
    widths = [float(width) for width in re.findall(r'style="width:([0-9.]+)%"', accounts)]
    sizes = [int(value) for value in re.findall(r'class="n size" data-v="([0-9]+)"', accounts)]
    assert widths.count(100.0) == sizes.count(max(sizes)) and len(widths) == len(sizes)
    for width, size in zip(widths, sizes):
        assert width == pytest.approx(100.0 * size / max(sizes), abs=0.06)


def test_growth_says_what_it_needs_when_there_is_no_previous_report():
    text = render.render_html(missing_cache_report())
    assert 'Growth is empty: it compares with an earlier report, given as fleet_report_previous' in text
    with_previous = render.render_html(missing_cache_report(previous=missing_cache_report()))
    assert 'Growth is empty' not in with_previous
