# TRC-105: a program executed from memory (memfd_create) or from a
# memory-backed shared directory, leaving no file on disk.
package tracee.TRC_105

import rego.v1

__rego_metadoc__ := {
	"id": "TRC-105",
	"version": "1",
	"name": "Fileless Execution",
	"eventName": "fileless_execution",
	"description": "A binary was executed from memory (memfd) or shared memory rather than from a file on disk, which hides it from file-based scanning.",
	"tags": ["linux", "container"],
	"properties": {
		"Severity": 3,
		"Category": "defense-evasion",
		"Technique": "Reflective Code Loading",
		"external_id": "T1620",
		"MITRE ATT&CK": "defense-evasion: Reflective Code Loading",
	},
}

tracee_selected_events contains {"source": "tracee", "name": "sched_process_exec", "origin": "*"}

# Where memory-only executables live: memfd files, and tmpfs shared memory.
# (A literal list: regorus evaluates it faster than a rule holding it.)
tracee_match if {
	input.eventName == "sched_process_exec"
	pathname := data.tracee.helpers.get_tracee_argument("pathname")
	strings.any_prefix_match(pathname, ["memfd:", "/dev/shm/", "/run/shm/"])
}
