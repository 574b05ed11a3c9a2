//! Handles people type, resolved: a job's number or id (`42`), a task's job and index
//! (`42.3`).

use buildcat_proto::{JobId, JobRef, RequestError, TaskId, TaskRef};

use super::Core;

impl Core {
    /// The job `job` names.
    ///
    /// # Errors
    /// [`RequestError::UnknownJob`] when no job on record has that number or id.
    pub(super) fn resolve(&self, job: JobRef) -> Result<JobId, RequestError> {
        let found = match job {
            JobRef::Id(id) => self.jobs.contains_key(&id).then_some(id),
            JobRef::Number(number) => self.numbers.get(&number).copied(),
        };
        found.ok_or(RequestError::UnknownJob(job))
    }

    /// The one task `task` names: its index, or the only task of a job of one task.
    ///
    /// # Errors
    /// [`RequestError::UnknownJob`], [`RequestError::UnknownTask`] for an index past the
    /// job's tasks, [`RequestError::WhichTask`] for a job of several tasks named without
    /// an index.
    pub(super) fn resolve_task(&self, task: TaskRef) -> Result<TaskId, RequestError> {
        let id = self.resolve(task.job)?;
        let count = self.jobs.get(&id).map_or(0, |job| job.tasks.len());
        let tasks = u32::try_from(count).unwrap_or(u32::MAX);
        match task.index {
            Some(index) if index < tasks => Ok(TaskId::new(id, index)),
            Some(index) => Err(RequestError::UnknownTask {
                job: task.job,
                index,
                tasks,
            }),
            None if tasks == 1 => Ok(TaskId::new(id, 0)),
            None => Err(RequestError::WhichTask {
                job: task.job,
                tasks,
            }),
        }
    }
}

impl Core {
    /// Task `id`, if it is on record.
    pub(super) fn task(&self, id: TaskId) -> Option<&super::job::Task> {
        self.jobs.get(&id.job)?.task(id.index)
    }

    /// Task `id`, to change it.
    pub(super) fn task_mut(&mut self, id: TaskId) -> Option<&mut super::job::Task> {
        self.jobs.get_mut(&id.job)?.task_mut(id.index)
    }
}
