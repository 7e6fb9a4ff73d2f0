-- One job by id (primary key).
SELECT {columns} FROM {schema}.jobs WHERE id = $1
