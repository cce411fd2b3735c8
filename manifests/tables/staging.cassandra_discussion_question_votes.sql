CREATE TABLE staging.cassandra_discussion_question_votes (
    question_id VARCHAR(64) NOT NULL
    ,user_id INTEGER NOT NULL
    ,vote SMALLINT
    ,voted_at TIMESTAMP
    ,PRIMARY KEY (question_id, user_id)
) DISTKEY(question_id) COMPOUND SORTKEY(question_id, voted_at);
