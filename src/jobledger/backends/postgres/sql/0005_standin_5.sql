-- A stand-in for a migration of another branch (not committed).
SELECT 1;
