"""Pure policy: functions and frozen data on plain values, no I/O."""
