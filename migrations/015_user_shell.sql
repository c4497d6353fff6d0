-- The shell whose line the key list's quick copy puts on the clipboard
-- (export NAME='…' for bash, set -gx for fish, …), remembered per person:
-- the last one they chose on a reveal result or their profile. The names
-- are keyledger.ShellFormats().
ALTER TABLE users ADD COLUMN shell text NOT NULL DEFAULT 'bash'
    CONSTRAINT users_shell_known CHECK (shell IN ('bash', 'fish', 'powershell', 'cmd', 'dotenv'));
