-- PostgreSQL only (its counter trigger is per statement); SQLite counts row by row under one writer.
SELECT 1;
