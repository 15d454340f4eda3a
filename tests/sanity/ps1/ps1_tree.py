# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Static checks of the collection's PowerShell, for machines without PowerShell (the PyPI packages
tree-sitter and tree-sitter-powershell parse it).

Used by tests/unit/test_ps1_parse.py and tests/unit/test_option_parity.py; also a command:

    python tests/sanity/ps1/ps1_tree.py [FILE...]     # every .ps1/.psm1 of the collection by default

prints `file:line:column: problem` for each problem and exits 1 when there is any:

- syntax: ERROR and MISSING nodes of the parse tree;
- commands: a call to a project function (defined in the collection's PowerShell, or named like one:
  Verb-Go*, Verb-GoFleet*, Verb-Vector*) that no file defines, a module calling a GoFleetCache.psm1 function
  the psm1 does not export, or a named parameter the called project function does not declare;
- variables (plugins/ only, where no test framework injects any): a variable read that nothing in its
  function (or, outside functions, in the file) assigns, declares or imports, and that PowerShell does not
  provide - in a language without a compiler here, that is how a typo shows.

The grammar lacks a few operators (-cin, -cnotin): the code uses -ccontains and -cnotcontains instead.
"""

from __future__ import annotations

import os
import re
import sys

import tree_sitter_powershell
from tree_sitter import Language, Parser

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
# Checkout-local directories that hold other projects' PowerShell (virtualenv activation scripts, copies).
SKIP_DIRS = frozenset(('.git', '.venv', '.cache', '.build', '.ansible', 'output', 'node_modules', '__pycache__'))
MODULE_UTIL = 'plugins/module_utils/GoFleetCache.psm1'
PROJECT_COMMAND = re.compile(r'^[A-Za-z]+-(Go|Vector)', re.IGNORECASE)
# Variables PowerShell itself provides (compared lower-case, scope prefixes removed).
AUTOMATIC_VARIABLES = frozenset((
    '_', 'psitem', 'true', 'false', 'null', 'args', 'input', 'matches', 'pid', 'host', 'home', 'error',
    'lastexitcode', 'psscriptroot', 'pscommandpath', 'pscmdlet', 'psboundparameters', 'myinvocation',
    'executioncontext', 'psversiontable', 'erroractionpreference', 'warningpreference', 'verbosepreference',
    'this', 'sender', 'eventargs', 'foreach', 'switch', 'iswindows', 'pshome', 'shellid', 'pwd'))
COMMON_PARAMETERS = frozenset((
    'verbose', 'debug', 'erroraction', 'warningaction', 'informationaction', 'errorvariable', 'warningvariable',
    'informationvariable', 'outvariable', 'outbuffer', 'pipelinevariable', 'whatif', 'confirm'))
# Wrapper nodes the grammar puts around a single expression.
_WRAPPERS = frozenset((
    'pipeline', 'pipeline_chain', 'logical_expression', 'bitwise_expression', 'comparison_expression',
    'additive_expression', 'multiplicative_expression', 'format_expression', 'range_expression',
    'key_expression', 'parenthesized_expression'))

_PARSER = Parser(Language(tree_sitter_powershell.language()))


class NotLiteral(ValueError):
    """A PowerShell expression that is not made of literals only."""


def parse(source):
    """The tree-sitter tree of PowerShell source (bytes)."""
    return _PARSER.parse(source)


def powershell_files(root=ROOT):
    """Every .ps1/.psm1 of the collection (relative paths, sorted)."""
    found = []
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(name for name in dirnames if name not in SKIP_DIRS)
        for name in filenames:
            if name.endswith(('.ps1', '.psm1')):
                found.append(os.path.relpath(os.path.join(directory, name), root).replace(os.sep, '/'))
    return sorted(found)


def _walk(node):
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children))


def _location(node):
    return node.start_point[0] + 1, node.start_point[1] + 1


def syntax_errors(tree):
    """[(line, column, message)] of ERROR and MISSING nodes."""
    problems = []

    def visit(node):
        if node.type == 'ERROR' or node.is_missing:
            line, column = _location(node)
            what = 'missing %r' % node.type if node.is_missing else 'syntax error near %r' % (
                node.text.decode('utf-8', 'replace').strip().splitlines() or [''])[0][:60]
            problems.append((line, column, what))
            return
        if node.has_error:
            for child in node.children:
                visit(child)
    visit(tree.root_node)
    return problems


# ---------------------------------------------------------------------------------------------- literals
def _string(node):
    """Value of a string_literal: verbatim ('' escapes a quote) or expandable without variables."""
    child = node.named_children[0]
    text = child.text.decode('utf-8')
    if child.type == 'verbatim_string_characters':
        return text[1:-1].replace("''", "'")
    if child.named_children:
        raise NotLiteral(text)
    escapes = {'n': '\n', 'r': '\r', 't': '\t', '0': '\0', '`': '`', '"': '"', '$': '$'}
    return re.sub(r'`(.)', lambda match: escapes.get(match.group(1), match.group(1)), text[1:-1])


def literal(node):
    """The Python value of a PowerShell literal expression: hashtables, @() and comma arrays, strings, numbers,
    $true/$false/$null. Raises NotLiteral for anything computed."""
    kind = node.type
    named = node.named_children
    if kind in _WRAPPERS or kind == 'array_literal_expression' and len(named) == 1:
        if len(named) != 1:
            raise NotLiteral(node.text.decode('utf-8'))
        return literal(named[0])
    if kind == 'array_literal_expression':
        return [literal(child) for child in named]
    if kind == 'unary_expression':
        if len(named) != 1:
            raise NotLiteral(node.text.decode('utf-8'))
        return literal(named[0])
    if kind == 'expression_with_unary_operator' and node.children[0].type == ',':
        return [literal(named[0])]   # the unary comma: a one-element array
    if kind == 'expression_with_unary_operator' and node.children[0].type == '-':
        return -literal(named[0])
    if kind == 'hash_literal_expression':
        result = {}
        for body in named:
            for entry in body.named_children:
                key_node, value_node = entry.named_children[0], entry.named_children[-1]
                key = literal(key_node) if key_node.named_children[0].type != 'generic_token' else key_node.text
                result[key if isinstance(key, str) else key_node.text.decode('utf-8')] = literal(value_node)
        return result
    if kind == 'array_expression':
        items = []
        for statements in named:
            for statement in statements.named_children:
                value = literal(statement)
                items.extend(value if isinstance(value, list) else [value])
        return items
    if kind == 'string_literal':
        return _string(node)
    if kind == 'integer_literal':
        return int(node.text.decode('utf-8'))
    if kind == 'variable':
        name = node.text.decode('utf-8').lower()
        if name in ('$true', '$false', '$null'):
            return {'$true': True, '$false': False, '$null': None}[name]
    if kind == 'simple_name' or kind == 'generic_token':
        return node.text.decode('utf-8')
    raise NotLiteral(node.text.decode('utf-8'))


def assigned_literal(tree, variable):
    """The literal value assigned to `$variable` at the top level of a script (e.g. a module's $spec)."""
    statements = [child for child in tree.root_node.named_children if child.type == 'statement_list']
    for statement in statements[0].named_children if statements else []:
        for node in _walk(statement):
            if node.type != 'assignment_expression':
                continue
            target = node.named_children[0].text.decode('utf-8').strip()
            if target.lower() == '$' + variable.lower():
                return literal(node.named_children[-1])
            break
    raise KeyError('no top-level assignment to $%s' % variable)


# ---------------------------------------------------------------------------------------------- functions
def _variable_name(node):
    """Lower-case name of a variable node without `$`, braces and the script:/global:/local: scope."""
    text = node.text.decode('utf-8')
    name = text[2:-1] if text.startswith('${') else text[1:]
    name = name.lower()
    for scope in ('script:', 'global:', 'local:', 'private:', 'using:'):
        if name.startswith(scope):
            return name[len(scope):]
    return name


def functions(tree):
    """{lower-case name: (name, set of lower-case parameter names, node)} of every function statement."""
    found = {}
    for node in _walk(tree.root_node):
        if node.type != 'function_statement':
            continue
        name_node = [child for child in node.children if child.type == 'function_name'][0]
        name = name_node.text.decode('utf-8')
        parameters = set()
        blocks = [child for child in node.named_children if child.type == 'param_block']
        if not blocks:
            body = [child for child in node.named_children if child.type == 'script_block']
            blocks = [child for child in (body[0].named_children if body else []) if child.type == 'param_block']
        for block in blocks:
            for parameter in _walk(block):
                if parameter.type == 'script_parameter':
                    parameters.add(_variable_name([c for c in parameter.named_children if c.type == 'variable'][0]))
        found[name.lower()] = (name, parameters, node)
    return found


def exported_functions(tree):
    """Names in `Export-ModuleMember -Function @(...)` (lower-case)."""
    for node in _walk(tree.root_node):
        if node.type == 'command' and _command_name(node) == 'export-modulemember':
            for child in _walk(node):
                if child.type == 'array_literal_expression':
                    return set(name.lower() for name in _flatten(literal(child)))
    return set()


def _flatten(value):
    if isinstance(value, list):
        for item in value:
            yield from _flatten(item)
    else:
        yield value


def _command_name(node):
    names = [child for child in node.named_children if child.type == 'command_name']
    return names[0].text.decode('utf-8').lower() if names else None


def command_calls(tree):
    """[(lower-case command name, [lower-case parameter names], node)] of every command invocation by name."""
    calls = []
    for node in _walk(tree.root_node):
        if node.type != 'command':
            continue
        name = _command_name(node)
        if name is None:
            continue
        parameters = []
        for elements in node.named_children:
            if elements.type != 'command_elements':
                continue
            for child in elements.named_children:
                if child.type == 'command_parameter':
                    parameters.append(child.text.decode('utf-8').lstrip('-').rstrip(':').lower())
        calls.append((name, parameters, node))
    return calls


# ---------------------------------------------------------------------------------------------- checks
def _is_assignment_target(variable):
    """True for `$x` in `$x = ...`, `$a, $b = ...`, `foreach ($x in ...)`, `param ($x)`; not `$h.key = ...`."""
    if variable.parent.type in ('foreach_statement', 'script_parameter'):
        return True
    node = variable.parent
    while node is not None:
        if node.type in ('member_access', 'element_access', 'invokation_expression'):
            return False
        if node.type == 'left_assignment_expression':
            return True
        if node.type in ('assignment_expression', 'pipeline', 'statement_list', 'foreach_statement'):
            return False
        node = node.parent
    return False


def _scope_problems(scope, known, outer, skip=()):
    """Reads in `scope` (but not in the `skip` nodes) of variables nothing assigns in it, in `outer` or PowerShell."""
    assigned = set(known)
    reads = []
    for node in _walk(scope):
        if node.type != 'variable' or any(item.start_byte <= node.start_byte < item.end_byte for item in skip):
            continue
        name = _variable_name(node)
        if _is_assignment_target(node):
            assigned.add(name)
        else:
            reads.append((name, node))
    problems = []
    for name, node in reads:
        if name in assigned or name in outer or name in AUTOMATIC_VARIABLES or name.startswith('env:'):
            continue
        line, column = _location(node)
        problems.append((line, column, 'variable %s is never assigned' % node.text.decode('utf-8')))
    return problems


def variable_problems(tree):
    """Variables read but assigned nowhere in their function (or, outside functions, in the file)."""
    defined = functions(tree)
    function_nodes = [item[2] for item in defined.values()]
    top_level = set()
    for node in _walk(tree.root_node):
        if node.type == 'variable' and _is_assignment_target(node) and not any(
                function.start_byte <= node.start_byte < function.end_byte for function in function_nodes):
            top_level.add(_variable_name(node))
    problems = _scope_problems(tree.root_node, (), top_level, skip=function_nodes)
    for _name, parameters, node in defined.values():
        problems.extend(_scope_problems(node, parameters, top_level))
    return sorted(set(problems))


def command_problems(path, tree, project_functions, module_util_exports):
    """Calls of project functions that nothing defines or exports, and parameters they do not declare."""
    own = functions(tree)
    problems = []
    for name, parameters, node in command_calls(tree):
        line, column = _location(node)
        if name in own:
            declared = own[name][1]
        elif name in project_functions:
            if path.startswith('plugins/modules/') and name not in module_util_exports:
                problems.append((line, column, '%s is not exported by %s' % (project_functions[name][0], MODULE_UTIL)))
                continue
            declared = project_functions[name][1]
        elif PROJECT_COMMAND.match(name):
            problems.append((line, column, 'unknown command %s' % node.named_children[0].text.decode('utf-8')))
            continue
        else:
            continue
        for parameter in parameters:
            if parameter not in declared and parameter not in COMMON_PARAMETERS:
                problems.append((line, column, 'parameter -%s is not declared by %s' % (parameter, name)))
    return problems


def check(paths, root=ROOT):
    """{path: [(line, column, problem)]} for the given files (relative to root)."""
    trees = {}
    for path in paths:
        with open(os.path.join(root, path), 'rb') as handle:
            trees[path] = parse(handle.read())
    every_function = {}
    for tree in trees.values():
        every_function.update(functions(tree))
    exports = set()
    if os.path.exists(os.path.join(root, MODULE_UTIL)):
        with open(os.path.join(root, MODULE_UTIL), 'rb') as handle:
            exports = exported_functions(parse(handle.read()))
    report = {}
    for path, tree in trees.items():
        problems = syntax_errors(tree)
        if not problems:
            problems = command_problems(path, tree, every_function, exports)
            if path.startswith('plugins/'):
                problems += variable_problems(tree)
        report[path] = sorted(problems)
    return report


def main(argv):
    paths = [os.path.relpath(os.path.abspath(path), ROOT).replace(os.sep, '/') for path in argv] or powershell_files()
    failed = 0
    for path, problems in check(paths).items():
        for line, column, problem in problems:
            print('%s:%d:%d: %s' % (path, line, column, problem))
            failed += 1
    print('%d PowerShell files, %d problems' % (len(paths), failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
