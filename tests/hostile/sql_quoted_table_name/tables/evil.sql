CREATE TABLE "evil; DROP TABLE prod.users; --" (id INTEGER PRIMARY KEY, user_name VARCHAR(255), user_email VARCHAR(255), "a"";DROP TABLE x;--" VARCHAR(10));
