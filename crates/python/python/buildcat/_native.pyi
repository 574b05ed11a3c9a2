"""Type stubs for the Rust extension under the buildcat package."""

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

DEFAULT_PORT: int
__version__: str

Frames = Union[str, int, Sequence[int]]
Tls = Union[None, bool, Dict[str, str]]
After = Optional[Sequence[Union["Job", int]]]

def register_errors(classes: Dict[str, type]) -> None: ...
def check_relative_path(path: str, what: str = "path") -> None: ...

class Job:
    """A job on the farm."""

    @property
    def id(self) -> str: ...
    @property
    def number(self) -> int: ...
    @property
    def tasks(self) -> int: ...
    @property
    def kind(self) -> str: ...
    def status(self) -> Dict[str, Any]: ...
    def wait(self, timeout: Optional[float] = None) -> Any: ...
    def cancel(self) -> List[Dict[str, Any]]: ...

class Client:
    """A connection to a buildcat server; also a context manager."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = ...,
        *,
        tls: Tls = None,
        timeout: Optional[float] = None,
    ) -> None: ...
    @property
    def address(self) -> str: ...
    @property
    def server_version(self) -> str: ...
    def __enter__(self) -> "Client": ...
    def __exit__(self, *exc: Any) -> bool: ...
    def close(self) -> None: ...
    def info(self) -> Dict[str, Any]: ...
    def jobs(
        self,
        *,
        queue: Optional[str] = None,
        state: Optional[str] = None,
        user: Optional[str] = None,
        limit: int = 50,
    ) -> Dict[str, Any]: ...
    def job(self, job: Union[int, str]) -> Job: ...
    def run(
        self,
        argv: Sequence[str],
        *,
        name: Optional[str] = None,
        queue: str = "default",
        priority: Optional[int] = None,
        timeout: Optional[float] = None,
        attempts: Optional[int] = None,
        after: After = None,
        gpus: Optional[int] = None,
        gpu_memory: Optional[int] = None,
    ) -> Job: ...
    def worker_info(
        self,
        *,
        queue: str = "default",
        priority: Optional[int] = None,
        timeout: Optional[float] = None,
    ) -> Job: ...
    def blender_render(
        self,
        scene: str,
        *,
        frames: Optional[Frames] = None,
        chunk: int = 1,
        output: Optional[str] = None,
        format: Optional[str] = None,
        engine: Optional[str] = None,
        scene_name: Optional[str] = None,
        cycles_device: Optional[str] = None,
        python_expr: Optional[str] = None,
        blender_args: Sequence[str] = (),
        allow_missing_libraries: bool = False,
        allow_outside_root: bool = False,
        movie: bool = False,
        name: Optional[str] = None,
        queue: str = "default",
        priority: Optional[int] = None,
        timeout: Optional[float] = None,
        attempts: Optional[int] = None,
        after: After = None,
        gpus: Optional[int] = None,
        gpu_memory: Optional[int] = None,
        gpu: bool = False,
    ) -> Job: ...
    def houdini_render_hip(
        self,
        hip: str,
        *,
        frames: Optional[Frames] = None,
        rop: str = "/out/mantra_ipr",
        name: Optional[str] = None,
        queue: str = "default",
        priority: Optional[int] = None,
        timeout: Optional[float] = None,
        attempts: Optional[int] = None,
        after: After = None,
        gpus: Optional[int] = None,
        gpu_memory: Optional[int] = None,
        gpu: bool = False,
    ) -> Job: ...
    def houdini_render_usd(
        self,
        usd: str,
        *,
        frames: Optional[Frames] = None,
        chunk: int = 1,
        renderer: Optional[str] = None,
        output: Optional[str] = None,
        name: Optional[str] = None,
        queue: str = "default",
        priority: Optional[int] = None,
        timeout: Optional[float] = None,
        attempts: Optional[int] = None,
        after: After = None,
        gpus: Optional[int] = None,
        gpu_memory: Optional[int] = None,
        gpu: bool = False,
    ) -> Job: ...
    def houdini_render_ifd(
        self,
        paths: Union[str, Sequence[str]],
        *,
        name: Optional[str] = None,
        queue: str = "default",
        priority: Optional[int] = None,
        timeout: Optional[float] = None,
        attempts: Optional[int] = None,
        after: After = None,
        gpus: Optional[int] = None,
        gpu_memory: Optional[int] = None,
        gpu: bool = False,
    ) -> Job: ...
    def modo_render(
        self,
        lxo: str,
        *,
        start: int = 0,
        stop: int = 1,
        step: int = 1,
        name: Optional[str] = None,
        queue: str = "default",
        priority: Optional[int] = None,
        timeout: Optional[float] = None,
        attempts: Optional[int] = None,
        after: After = None,
        gpus: Optional[int] = None,
        gpu_memory: Optional[int] = None,
        gpu: bool = False,
    ) -> Job: ...
    def redshift_render(
        self,
        rs: str,
        *,
        name: Optional[str] = None,
        queue: str = "default",
        priority: Optional[int] = None,
        timeout: Optional[float] = None,
        attempts: Optional[int] = None,
        after: After = None,
        gpus: Optional[int] = None,
        gpu_memory: Optional[int] = None,
        gpu: bool = False,
    ) -> Job: ...
    def submit_command(
        self,
        queue: str,
        command: str,
        args: Tuple[Any, ...],
        kwargs: Optional[Dict[str, Any]] = None,
        job_timeout: Optional[float] = None,
    ) -> Job: ...
