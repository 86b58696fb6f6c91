"""Publishing the marts where the business reads them: a local .xlsx workbook, or Google
Sheets (issue 5) through the same `Publisher` interface."""
