"""Where a decision is made: rules, the entrance's assessment of a scan, and the pure decision."""
