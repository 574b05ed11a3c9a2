"""Buildcat for Blender: a panel in Render Properties that submits the scene to a buildcat
render farm.

"Submit to farm" saves a copy of the .blend under the farm root (so the artist keeps
working on the original), names it relative to the root, and submits one job rendering the
frames in chunks; the job is named after the scene and its frames. The farm root as this
machine sees it, and the TLS files, are in the add-on's preferences.

The buildcat Python package (with its Rust client, built for the stable ABI so it loads in
Blender's Python 3.9+) sits inside this add-on.
"""

bl_info = {
    "name": "Buildcat",
    "author": "Buildcat developers",
    "version": (0, 6, 0),
    "blender": (3, 0, 0),
    "location": "Properties > Render > Buildcat",
    "description": "Submit the scene to a buildcat render farm",
    "category": "Render",
}

import os
import time

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, PointerProperty, StringProperty

# The folder under the farm root that holds the copies submitted scenes render from.
SUBMISSIONS = "buildcat/submissions"


def _buildcat():
    """The buildcat package inside this add-on (imported on use, so a broken build shows
    up as a report rather than a failed add-on)."""
    from . import buildcat

    return buildcat


def _preferences(context):
    return context.preferences.addons[__package__].preferences


class BuildcatPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    farm_root: StringProperty(
        name="Farm root",
        description="The farm's shared storage as this machine sees it (BUILDCAT_ROOT); "
        "submitted scenes are copied under it",
        subtype="DIR_PATH",
    )
    web_page: StringProperty(
        name="Web page",
        description="The farm's web page (buildcat server's --http address), for links to "
        "submitted jobs; empty: http://SERVER:2229",
    )
    tls_ca: StringProperty(
        name="Server certificate",
        description="The server's certificate (server.cert); empty for plain TCP",
        subtype="FILE_PATH",
    )
    tls_cert: StringProperty(
        name="Client certificate",
        description="This machine's certificate (client.cert)",
        subtype="FILE_PATH",
    )
    tls_key: StringProperty(
        name="Client key",
        description="This machine's private key (client.key)",
        subtype="FILE_PATH",
    )

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "farm_root")
        layout.prop(self, "web_page")
        box = layout.box()
        box.label(text="TLS (leave empty for plain TCP)")
        box.prop(self, "tls_ca")
        box.prop(self, "tls_cert")
        box.prop(self, "tls_key")


class BuildcatSettings(bpy.types.PropertyGroup):
    host: StringProperty(name="Server", default="127.0.0.1", description="The server's host")
    port: IntProperty(name="Port", default=2228, min=1, max=65535)
    queue: StringProperty(name="Queue", default="default")
    job_name: StringProperty(
        name="Job name", description="Empty: the scene's file name and frames"
    )
    use_scene_range: BoolProperty(
        name="Scene's frame range",
        default=True,
        description="Render the scene's frame range; off: the frames below",
    )
    frames: StringProperty(
        name="Frames", default="1", description="A frame spec such as 1-100 or 1,5,10-20:2"
    )
    chunk: IntProperty(name="Frames per task", default=1, min=1)
    output: StringProperty(
        name="Output",
        default="renders/####",
        description="Blender's output pattern, relative to the farm root",
    )
    priority: IntProperty(name="Priority", default=0, description="Higher runs first")
    device: EnumProperty(
        name="GPU",
        description="The Cycles device the workers render on",
        items=[
            ("WORKER", "Worker's choice", "The worker's --cycles-device, else the CPU"),
            ("CUDA", "CUDA", ""),
            ("OPTIX", "OptiX", ""),
            ("HIP", "HIP", ""),
            ("ONEAPI", "oneAPI", ""),
            ("METAL", "Metal", ""),
        ],
        default="WORKER",
    )
    gpu: BoolProperty(
        name="Render on a GPU",
        default=False,
        description="Each task needs a worker slot with a GPU of its own and renders Cycles "
        "on it (the slot's CUDA or HIP unless a device is picked above)",
    )
    gpu_memory: IntProperty(
        name="GPU memory (MiB)",
        default=0,
        min=0,
        description="The least memory the GPU must have, in MiB; 0 for any",
    )
    last_job: IntProperty(name="Last job", default=0)


def scene_frames(scene):
    """The scene's frame range as a frame spec."""
    spec = f"{scene.frame_start}-{scene.frame_end}"
    if scene.frame_step != 1:
        spec += f":{scene.frame_step}"
    return spec


def submit(context):
    """Saves a copy of the scene under the farm root and submits it; returns the job."""
    buildcat = _buildcat()
    preferences = _preferences(context)
    settings = context.scene.buildcat
    root = bpy.path.abspath(preferences.farm_root) if preferences.farm_root else ""
    root = root or os.environ.get("BUILDCAT_ROOT", "")
    if not root or not os.path.isdir(root):
        raise buildcat.InvalidRequest(
            "set the farm root (the shared storage as this machine sees it) in the "
            "Buildcat add-on's preferences"
        )
    blend = bpy.path.basename(bpy.data.filepath) or "untitled.blend"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = os.path.join(root, SUBMISSIONS, f"{os.path.splitext(blend)[0]}-{stamp}")
    os.makedirs(folder, exist_ok=True)
    copy = os.path.join(folder, blend)
    bpy.ops.wm.save_as_mainfile(filepath=copy, copy=True)
    tls = None
    if preferences.tls_ca or preferences.tls_cert or preferences.tls_key:
        tls = {
            "ca": bpy.path.abspath(preferences.tls_ca),
            "cert": bpy.path.abspath(preferences.tls_cert),
            "key": bpy.path.abspath(preferences.tls_key),
        }
    frames = scene_frames(context.scene) if settings.use_scene_range else settings.frames
    with buildcat.Client(settings.host, settings.port, tls=tls, timeout=10) as client:
        job = client.blender_render(
            buildcat.relative_to_root(copy, root),
            frames=frames,
            chunk=settings.chunk,
            output=settings.output or None,
            cycles_device=None if settings.device == "WORKER" else settings.device,
            name=settings.job_name or None,
            queue=settings.queue,
            priority=settings.priority,
            gpu=settings.gpu,
            gpu_memory=settings.gpu_memory or None,
        )
    settings.last_job = job.number
    return job


# The port `buildcat server` serves its web page on unless told otherwise (--http).
DEFAULT_WEB_PORT = 2229


def job_page(context, number):
    """The address of job `number` on the farm's web page."""
    page = _preferences(context).web_page.strip().rstrip("/")
    if not page:
        page = f"http://{context.scene.buildcat.host}:{DEFAULT_WEB_PORT}"
    return f"{page}/#/job/{number}"


class BUILDCAT_OT_open_job(bpy.types.Operator):
    """Open the last submitted job on the farm's web page"""

    bl_idname = "buildcat.open_job"
    bl_label = "Open on the web page"

    def execute(self, context):
        number = context.scene.buildcat.last_job
        if not number:
            self.report({"ERROR"}, "no job submitted from this scene yet")
            return {"CANCELLED"}
        bpy.ops.wm.url_open(url=job_page(context, number))
        return {"FINISHED"}


class BUILDCAT_OT_submit(bpy.types.Operator):
    """Save a copy of the scene under the farm root and render it on the farm"""

    bl_idname = "buildcat.submit"
    bl_label = "Submit to farm"

    def execute(self, context):
        buildcat = _buildcat()
        try:
            job = submit(context)
        except buildcat.Error as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        settings = context.scene.buildcat
        self.report(
            {"INFO"},
            f"submitted job {job.number} ({job.tasks} task(s)) to {settings.host}:"
            f"{settings.port}; follow it on {job_page(context, job.number)} or with "
            f"`buildcat status {job.number}`",
        )
        return {"FINISHED"}


class BUILDCAT_PT_render(bpy.types.Panel):
    bl_label = "Buildcat"
    bl_space_type = "PROPERTIES"
    bl_region_type = "WINDOW"
    bl_context = "render"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.buildcat
        row = layout.row()
        row.prop(settings, "host")
        row.prop(settings, "port")
        layout.prop(settings, "queue")
        layout.prop(settings, "job_name")
        layout.prop(settings, "use_scene_range")
        if settings.use_scene_range:
            layout.label(text=f"Frames: {scene_frames(context.scene)}")
        else:
            layout.prop(settings, "frames")
        layout.prop(settings, "chunk")
        layout.prop(settings, "output")
        layout.prop(settings, "priority")
        layout.prop(settings, "device")
        layout.prop(settings, "gpu")
        if settings.gpu:
            layout.prop(settings, "gpu_memory")
        layout.operator(BUILDCAT_OT_submit.bl_idname, icon="RENDER_ANIMATION")
        if settings.last_job:
            row = layout.row()
            row.label(text=f"Last submitted: job {settings.last_job}")
            row.operator(BUILDCAT_OT_open_job.bl_idname, icon="URL")


CLASSES = (
    BuildcatPreferences,
    BuildcatSettings,
    BUILDCAT_OT_open_job,
    BUILDCAT_OT_submit,
    BUILDCAT_PT_render,
)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.buildcat = PointerProperty(type=BuildcatSettings)


def unregister():
    del bpy.types.Scene.buildcat
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
