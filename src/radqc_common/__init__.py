"""Infrastructure shared by the two systems (web protections, CLI entry wrapper, typed YAML config
loading), so that neither ``echoquality`` nor ``nhs_lookup`` imports the other."""
