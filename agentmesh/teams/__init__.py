"""Teams of agents declared as data: one folder of Markdown files per team, loaded and validated once at start-up."""
