# -*- coding: utf-8 -*-
# Copyright (c) gofleet.cache contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Action plugin for the modules that have a Python and a PowerShell implementation of one name.

Ansible picks a module file by the connection's module_implementation_preferences:
('.ps1', '.exe', '') for Windows connections, but ('',) for local, ssh to POSIX,
podman and the rest, and then takes the alphabetically first match, which is the
.ps1 (".ps1" sorts before ".py").  POSIX hosts must run the .py: this action
prefers it for every connection that does not talk to a Windows shell.
"""

from __future__ import annotations

from ansible.plugins.action.normal import ActionModule as NormalActionModule

POSIX_PREFERENCES = ('.py', '')


class TwinModuleAction(NormalActionModule):
    """ansible.builtin.normal, with the .py implementation first on POSIX hosts."""

    def run(self, tmp=None, task_vars=None):
        if not getattr(self._connection._shell, '_IS_WINDOWS', False):
            self._connection.module_implementation_preferences = POSIX_PREFERENCES
        return super(TwinModuleAction, self).run(tmp, task_vars)
