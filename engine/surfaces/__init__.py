"""What people use: the command line, the report, the local app and the demo."""
