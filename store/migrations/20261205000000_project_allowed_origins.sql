-- CORS per project: the browser origins ('https://app.example.com') whose pages may call the
-- API with the project's keys, separated by spaces. Empty (the default): none, CORS is off.
ALTER TABLE projects ADD COLUMN allowed_origins TEXT NOT NULL DEFAULT '';
