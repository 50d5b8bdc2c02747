"""The command line: the only code that prints or exits (main.py, the group, and one
module per command; output.py for what they show). Empty, so the click-free modules that
run a parsed build (run_build, run_bundle) import without the command line's framework."""
