"""Reports of a verification: terminal table, JSON, JUnit, Markdown, HTML, tolerance table."""
