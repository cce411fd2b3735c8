CREATE TABLE staging.maestro_users (
    id INTEGER DISTKEY PRIMARY KEY
    ,user_name VARCHAR(255)
    ,user_email VARCHAR(255)
) SORTKEY(id);
