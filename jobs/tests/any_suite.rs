//! The queue behaviour suite through [`jobs::AnyQueue`], over the in-memory
//! queue: every call the erased queue forwards reaches the backend.

jobs_testkit::queue_behaviour_suite!(async {
    Some(jobs::AnyQueue::new(jobs::MemoryJobQueue::new()))
});
