"""The one-page report: numbers collected from every stage's outputs, figures, HTML and Markdown."""
