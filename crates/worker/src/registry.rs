//! The handler registry: which function runs each job kind.
//!
//! Handlers are stored type-erased (bytes in, bytes out) so one map holds every kind; the
//! typed wrapper made by [`Registry::insert`] decodes the arguments into the [`Task`] type
//! and encodes its output, so handlers themselves only see typed values.

use std::any::type_name;
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

use buildcat_proto::{Failure, RunCommand, RunCommandIn, Task, WorkerInfo, codec};

use crate::context::JobContext;
use crate::integrations::tools::Tool;
use crate::{command, info};

/// The future a type-erased handler returns: the encoded output, or why the task failed.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Vec<u8>, Failure>> + Send + 'static>>;

/// A type-erased handler: takes the encoded arguments and the task's context.
pub type Handler = Box<dyn Fn(&[u8], JobContext) -> HandlerFuture + Send + Sync + 'static>;

/// Maps each job kind this worker runs to its handler.
pub struct Registry {
    /// Handlers by kind; ordered so that the kinds list is stable in logs and messages.
    handlers: BTreeMap<String, Handler>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("kinds", &self.handlers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

impl Registry {
    /// A registry holding the built-in handlers: [`WorkerInfo`], [`RunCommand`] and
    /// [`RunCommandIn`].
    pub fn new() -> Self {
        let mut registry = Registry::empty();
        registry.insert::<WorkerInfo, _, _>(info::handle);
        registry.insert::<RunCommand, _, _>(command::handle);
        registry.insert::<RunCommandIn, _, _>(command::handle_in);
        registry
    }

    /// A registry with no handlers at all.
    pub fn empty() -> Self {
        Registry {
            handlers: BTreeMap::new(),
        }
    }

    /// Registers `handler` for tasks of kind `T::KIND`, replacing any handler it had.
    ///
    /// Arguments that do not decode as `T` fail the task without calling the handler.
    pub fn insert<T, F, Fut>(&mut self, handler: F)
    where
        T: Task,
        F: Fn(T, JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T::Output, Failure>> + Send + 'static,
    {
        self.insert_raw(T::KIND, typed(handler));
    }

    /// Registers a type-erased handler for `kind`, replacing any handler it had.
    pub fn insert_raw(&mut self, kind: impl Into<String>, handler: Handler) {
        self.handlers.insert(kind.into(), handler);
    }

    /// The kinds with a handler, in sorted order.
    pub fn kinds(&self) -> impl Iterator<Item = &str> {
        self.handlers.keys().map(String::as_str)
    }

    /// The handler for `kind`, if there is one.
    pub fn get(&self, kind: &str) -> Option<&Handler> {
        self.handlers.get(kind)
    }

    /// Starts the handler for `kind`; an unknown kind gives a future that fails at once,
    /// naming the kinds this registry does handle.
    pub fn run(&self, kind: &str, args: &[u8], context: JobContext) -> HandlerFuture {
        match self.handlers.get(kind) {
            Some(handler) => handler(args, context),
            None => {
                let known = self.kinds().collect::<Vec<_>>().join(", ");
                let tool = Tool::ALL.iter().find(|tool| tool.kinds().contains(&kind));
                let failure = Failure::new(match tool {
                    // A DCC kind: the tool was not found when the worker started.
                    Some(tool) => format!(
                        "this worker cannot run `{kind}`: {tool} is not installed on it (it \
                         was neither found on PATH nor given with {} when the worker started; \
                         it handles: {known})",
                        tool.flag()
                    ),
                    None => format!(
                        "this worker has no handler for job kind `{kind}` (it handles: {known})"
                    ),
                });
                Box::pin(std::future::ready(Err(failure)))
            }
        }
    }
}

/// Wraps a typed handler into one that decodes its arguments and encodes its output.
fn typed<T, F, Fut>(handler: F) -> Handler
where
    T: Task,
    F: Fn(T, JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T::Output, Failure>> + Send + 'static,
{
    Box::new(move |args: &[u8], context: JobContext| -> HandlerFuture {
        let task = match T::decode_args(args) {
            Ok(task) => task,
            Err(error) => {
                let failure = Failure::new(format!(
                    "the arguments of this `{}` task do not decode as {}: {error}",
                    T::KIND,
                    type_name::<T>()
                ));
                return Box::pin(std::future::ready(Err(failure)));
            }
        };
        let running = handler(task, context);
        Box::pin(async move {
            let output = running.await?;
            codec::encode_value(&output).map_err(|error| {
                Failure::new(format!(
                    "the output of this `{}` task could not be encoded: {error}",
                    T::KIND
                ))
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use buildcat_proto::{JobId, TaskId};
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Add {
        left: u32,
        right: u32,
    }

    impl Task for Add {
        const KIND: &'static str = "test.add";
        type Output = u32;
    }

    fn context() -> JobContext {
        let job: JobId = "00000000-0000-7000-8000-000000000001"
            .parse()
            .unwrap_or_else(|e| panic!("bad test id: {e}"));
        JobContext::new(
            TaskId::new(job, 0),
            1,
            "default",
            PathBuf::from("/"),
            "test",
        )
    }

    fn registry() -> Registry {
        let mut registry = Registry::new();
        registry.insert(|task: Add, _context| async move { Ok(task.left + task.right) });
        registry
    }

    fn run(registry: &Registry, kind: &str, args: &[u8]) -> Result<Vec<u8>, Failure> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|e| panic!("no runtime: {e}"));
        runtime.block_on(registry.run(kind, args, context()))
    }

    #[test]
    fn kinds_include_the_built_in_worker_info() {
        let kinds = registry().kinds().map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(
            kinds,
            [
                "buildcat.command.run",
                "buildcat.command.run_in",
                "buildcat.worker.info",
                "test.add"
            ]
        );
        assert_eq!(Registry::empty().kinds().count(), 0);
    }

    #[test]
    fn typed_handler_decodes_args_and_encodes_output() {
        let args = codec::encode_value(&Add { left: 2, right: 3 }).unwrap_or_default();
        let output = run(&registry(), Add::KIND, &args).unwrap_or_default();
        assert_eq!(codec::decode_value::<u32>(&output).ok(), Some(5));
    }

    #[test]
    fn undecodable_args_fail_naming_the_kind() {
        let failure = run(&registry(), Add::KIND, &[0xff]).err();
        let reason = failure.map(|f| f.reason).unwrap_or_default();
        assert!(reason.contains("`test.add`"), "{reason}");
        assert!(reason.contains("do not decode"), "{reason}");
    }

    #[test]
    fn a_dcc_kind_without_its_tool_says_the_tool_is_missing() {
        let failure = run(&Registry::empty(), "buildcat.blender.render", &[]).err();
        let reason = failure.map(|f| f.reason).unwrap_or_default();
        assert!(
            reason.starts_with(
                "this worker cannot run `buildcat.blender.render`: blender is not installed"
            ),
            "{reason}"
        );
        assert!(reason.contains("--blender"), "{reason}");
    }

    #[test]
    fn unknown_kind_fails_listing_known_kinds() {
        let failure = run(&registry(), "x", &[]).err();
        let reason = failure.map(|f| f.reason).unwrap_or_default();
        assert_eq!(
            reason,
            "this worker has no handler for job kind `x` (it handles: buildcat.command.run, \
             buildcat.command.run_in, buildcat.worker.info, test.add)"
        );
    }
}
