-- Redshift as the users pipeline finds it before its upsert, as a local PostgreSQL database:
-- staging.maestro_users holds what load_staging copied from the extract (the source's rows
-- with two changes since), prod.users the rows of an earlier run. Loaded by `make seed`.
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'consumer_group') THEN
        CREATE ROLE consumer_group;
    END IF;
END $$;
DROP SCHEMA IF EXISTS staging CASCADE;
DROP SCHEMA IF EXISTS prod CASCADE;
CREATE SCHEMA staging;
CREATE SCHEMA prod;
CREATE TABLE staging.maestro_users (
    id INTEGER PRIMARY KEY,
    user_name VARCHAR(255),
    user_email VARCHAR(255)
);
INSERT INTO staging.maestro_users (id, user_name, user_email) VALUES
    (1, 'ada', 'ada@example.com'),
    (2, 'grace', 'grace@example.com'),
    (3, 'edsger', 'edsger@example.com'),
    (4, 'barbara', 'barbara@example.org'),
    (5, 'donald', 'donald@example.org'),
    (6, 'frances', 'frances@example.com'),
    (7, 'ken', 'ken@example.net'),
    (8, 'margaret', 'margaret@example.net'),
    (9, 'john', 'john@example.com'),
    (10, 'radia', 'radia@example.org'),
    (11, 'tony', 'tony@example.com'),
    (12, 'sophie', 'sophie@example.net');
CREATE TABLE prod.users (
    id INTEGER PRIMARY KEY,
    user_name VARCHAR(255),
    user_email VARCHAR(255)
);
INSERT INTO prod.users (id, user_name, user_email) VALUES
    (1, 'ada', 'ada@old.example.com'),
    (2, 'grace', 'grace@example.com'),
    (3, 'edsger', 'edsger@old.example.com');
