-- The RDS source of the users pipeline (mysql.maestro), as a local MySQL/MariaDB database.
-- Loaded by `make seed`; see the README's "Run a step locally".
DROP TABLE IF EXISTS users;
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    user_name VARCHAR(255),
    user_email VARCHAR(255)
);
INSERT INTO users (id, user_name, user_email) VALUES
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
