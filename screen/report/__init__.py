"""The comparative screening report: stored results -> context -> plots -> HTML and PDF.

Public entry points: `screen.report.render.render_report`, `screen.report.context.build_context`
and `screen.report.verdicts.session_verdicts`. Nothing heavy is imported here.
"""
