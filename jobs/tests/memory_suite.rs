//! The queue behaviour suite against the in-memory queue.

jobs_testkit::queue_behaviour_suite!(async { Some(jobs::MemoryJobQueue::new()) });
