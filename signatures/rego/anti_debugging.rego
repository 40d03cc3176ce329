# TRC-102: a process asks to be traced by its parent (ptrace PTRACE_TRACEME),
# a classic trick to keep a debugger from attaching.
package tracee.TRC_102

import rego.v1

__rego_metadoc__ := {
	"id": "TRC-102",
	"version": "1",
	"name": "Anti-Debugging detected",
	"eventName": "anti_debugging",
	"description": "A process used anti-debugging techniques to block a debugger (ptrace PTRACE_TRACEME). Malware uses it to hide from analysts.",
	"tags": ["linux", "container"],
	"properties": {
		"Severity": 1,
		"Category": "defense-evasion",
		"Technique": "Debugger Evasion",
		"external_id": "T1622",
		"MITRE ATT&CK": "defense-evasion: Debugger Evasion",
	},
}

tracee_selected_events contains {"source": "tracee", "name": "ptrace", "origin": "*"}

# PTRACE_TRACEME is request 0; with parse-arguments on, its name.
tracee_match if {
	input.eventName == "ptrace"
	data.tracee.helpers.get_tracee_argument("request") in {0, "PTRACE_TRACEME"}
}
