//! With feature `opentelemetry`: the trace context travels in the job.
