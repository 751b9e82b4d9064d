"""Web protections shared by the two systems' local web apps (the lookup review service and the echo
review workspace), so neither package imports the other."""
