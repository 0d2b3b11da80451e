"""A guest's sandbox directory, as the capabilities that keep its state there and the checks of who could change it
both read it."""

# Its kv database, and the files SQLite opens beside it by name: that name with these endings.
KV_STORE = "kv.sqlite3"
KV_STORE_ENDINGS = ("", "-wal", "-shm", "-journal")

# Beside a guest's files directory, with its name and this ending: the disk quota's count that every instance of the
# guest running over those files shares (`capabilities.wasi_quota.SharedDiskQuota`).
QUOTA_LEDGER_ENDING = ".quota"
