CREATE TABLE prod.users (
    id INTEGER DISTKEY PRIMARY KEY
    ,user_name VARCHAR(255) ENCODE zstd
    ,user_email VARCHAR(255) ENCODE zstd
) SORTKEY(id);
