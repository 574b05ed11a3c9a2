//! Jobs made of tasks.
