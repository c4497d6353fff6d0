-- Placeholder: migration 012 is another branch's (the numbers are handed
-- out per task). tern refuses a gap, so this stands in until that branch
-- is merged; drop this file then. It changes nothing.
SELECT 1;
