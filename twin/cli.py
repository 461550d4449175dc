"""The ``twin`` command line: render, record, validate, layers, serve, demo, hub, warmup, aggregate.

Errors print one line (``twin: error: ...``) and exit 1; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path
from typing import Any

import click

from twin.errors import TwinError

__all__ = ["main"]

def _size(value: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not WIDTHxHEIGHT, e.g. 1920x1080") from None
    return width, height


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None, line: str | None = None) -> None:
    click.echo(f"twin: warning: {message}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks and debug logs.")
@click.version_option(package_name="twin")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """twin: a digital-twin 3D city viewer (scenes of buildings, live layers and alerts)."""
    ctx.obj = {"debug": debug}
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="twin: %(levelname)s: %(name)s: %(message)s")
    if not debug:
        warnings.showwarning = _show_warning
        for handler in logging.getLogger().handlers:  # a message also issued as a warning is shown once, as the warning
            handler.addFilter(lambda record: not getattr(record, "twin_warned", False))


@cli.command()
@click.argument("scene_file", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="PNG file to write.")
@click.option("--size", default="1920x1080", show_default=True, help="Image size WIDTHxHEIGHT, e.g. 3840x2160.")
@click.option("--camera", default=None, help="Name of a camera preset in the scene file.")
def render(scene_file: Path, output: Path, size: str, camera: str | None) -> None:
    """Render SCENE_FILE offscreen to a PNG (no display needed)."""
    from twin.scene.model import Scene

    scene = Scene.from_file(scene_file)
    path = scene.screenshot(output, size=_size(size), camera=camera)
    click.echo(f"wrote {path} ({size})")


@cli.command()
@click.argument("scene_file", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="MP4 file to write.")
@click.option("--tour", default=None, help="Name of a camera tour in the scene file to fly through.")
@click.option("--replay", nargs=2, default=None, metavar="START END", help="Replay scene time from START to END (ISO 8601, e.g. 2026-07-01T20:00+08:00).")
@click.option("--fps", default=10.0, show_default=True, type=float, help="Frames per second.")
@click.option("--size", default="1280x720", show_default=True, help="Video size WIDTHxHEIGHT (even numbers, at most 3840x2160).")
@click.option("--duration", default=None, help="Length of the video, e.g. 30s (default: the tour's length, else 10s).")
def record(scene_file: Path, output: Path, tour: str | None, replay: tuple[str, str] | None, fps: float, size: str, duration: str | None) -> None:
    """Record SCENE_FILE offscreen to an H.264 MP4: a flight through a tour and/or a replay of scene time."""
    from twin.scene.model import Scene

    scene = Scene.from_file(scene_file)
    path = scene.record(output, tour=tour, replay=replay, fps=fps, size=_size(size), duration=duration)
    click.echo(f"wrote {path} ({size}, {fps:g} fps)")


@cli.command()
@click.argument("scene_files", nargs=-1, required=True, type=click.Path(path_type=Path))
def validate(scene_files: tuple[Path, ...]) -> None:
    """Check scene files against the schema, the installed plugins and the sources' own checks, e.g. that files exist (reads no data)."""
    from twin.scene.model import Scene

    for path in scene_files:
        scene = Scene.from_file(path)
        scene.check()
        click.echo(f"{path}: ok ({len(scene.layers)} layers, {len(scene.cameras)} cameras)")


@cli.command("layers")
def list_layers() -> None:
    """List installed layer and source types with their parameters."""
    from twin.params import describe_params
    from twin.plugins import layer_types, source_types
    from twin.scene.schema import LayerCommon

    for title, registry in (("Layer types", layer_types()), ("Source types", source_types())):
        click.secho(title, bold=True)
        for name in registry.names():
            try:
                cls = registry.get(name)
            except TwinError as exc:
                click.echo(f"  {name}  (failed to load: {exc})")
                continue
            doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
            click.echo(f"  {name}: {doc}")
            for pname, ptype, default, description in describe_params(cls.Params):
                click.echo(f"      {pname} ({ptype}, default {default}): {description}")
        click.echo("")
    click.secho("Keys every layer has", bold=True)
    for pname, ptype, default, description in describe_params(LayerCommon):
        click.echo(f"      {pname} ({ptype}, default {default}): {description}")


def _access(host: str, port: int, token_file: Path | None, no_auth: bool, allow_origin: tuple[str, ...]) -> Any:
    """The :class:`~twin.app.access.AccessPolicy` the options ask for; raises AccessError (e.g. a non-loopback host without a token)."""
    from twin.app.access import access_policy

    return access_policy(host, port, token_file=token_file, no_auth=no_auth, allow_origins=allow_origin,
                         warn=lambda line: click.echo(f"twin: warning: {line}", err=True))


_host = click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback unless told otherwise).")
_port = click.option("--port", default=8080, show_default=True, type=int, help="Port to listen on.")
_view = click.option("--view", type=click.Choice(["auto", "remote", "local"]), default="auto", show_default=True,
                     help="remote: server renders images; local: the browser renders (vtk.js); auto: by triangle count.")
_browser = click.option("--open-browser/--no-browser", default=False, show_default=True, help="Open a browser tab.")
_kiosk = click.option("--kiosk", is_flag=True, help="The command-hall wall: every page full-screen 3D with large overlays, the scene's wall: tour and "
                      "alert interrupts (a page asks ?kiosk=0 for the explorer; any page can ask ?kiosk=1).")
_lang = click.option("--lang", type=click.Choice(["zh_CN", "en"]), default=None, help="Language of the pages (default: each browser's; Chinese with --kiosk).")


def _auth(command: Any) -> Any:
    """The access options of ``serve`` and ``demo`` (see docs/serving.md)."""
    for option in reversed((
        click.option("--token-file", type=click.Path(path_type=Path), default=None,
                     help="File of tokens, one a line: name:token or a bare token (also: $TWIN_TOKEN). Needed to bind beyond 127.0.0.1."),
        click.option("--no-auth", is_flag=True, help="Serve a non-loopback address without a token (prints a warning: anyone on the network gets in)."),
        click.option("--allow-origin", multiple=True, metavar="ORIGIN", help="Another origin whose pages may open the websocket, e.g. https://wall.example.com."),
    )):
        command = option(command)
    return command


_sessions_option = click.option("--sessions", type=click.IntRange(min=1), default=None,
                                help="Serve many planners, each in a session of their own (at most N at once): the same as `twin hub`.")


@cli.command()
@click.argument("scene_file", type=click.Path(path_type=Path))
@_host
@_port
@_view
@_browser
@_auth
@_kiosk
@_lang
@_sessions_option
def serve(scene_file: Path, host: str, port: int, view: str, open_browser: bool, token_file: Path | None, no_auth: bool,
          allow_origin: tuple[str, ...], kiosk: bool, lang: str | None, sessions: int | None) -> None:
    """Serve SCENE_FILE in the browser app (127.0.0.1 by default; any other address needs a token).

    With --sessions N, SCENE_FILE may be a folder of scenes: `twin hub SCENE_FILE --sessions N` runs (one app process per planner).
    """
    from twin.scene.model import Scene

    if sessions is not None:
        if kiosk or lang is not None or open_browser:
            raise click.UsageError("--sessions serves planners through the hub: it takes no --kiosk, --lang or --open-browser")
        ctx = click.get_current_context()
        timeouts = {p.name: p.process_value(ctx, p.get_default(ctx)) for p in hub.params if p.name in ("idle_timeout", "start_timeout")}  # hub's defaults
        ctx.invoke(hub, scenes=scene_file, host=host, port=port, view=view, token_file=token_file, no_auth=no_auth, allow_origin=allow_origin,
                   sessions=sessions, **timeouts)
        return
    access = _access(host, port, token_file, no_auth, allow_origin)
    _show(Scene.from_file(scene_file), None, host, port, view, open_browser, access, kiosk=kiosk, lang=lang)


@cli.command()
@_host
@_port
@_view
@_browser
@_auth
@click.option("--render", "render_to", type=click.Path(path_type=Path), default=None, help="Render the demo to this PNG instead of serving it.")
@click.option("--offline", is_flag=True, help="Read the generated data directly instead of through the local one-map server (needs no pygeoapi).")
@click.option("--scene-file", "print_scene", is_flag=True, help="Print the path of the demo scene file (a start for your own scene) and exit.")
def demo(host: str, port: int, view: str, open_browser: bool, token_file: Path | None, no_auth: bool, allow_origin: tuple[str, ...],
         render_to: Path | None, offline: bool, print_scene: bool) -> None:
    """Show the demo district, pulled from a local one-map server (pygeoapi on 127.0.0.1).

    The district is generated on first run (then cached); a simulator feeds live flood readings
    into the server, and the viewer reads everything through the production source plugins.
    The server needs the ``demo`` extra (pip install 'twin[demo]'); --offline does not.
    """
    from twin.demo import demo_scene
    from twin.scene.model import Scene

    access = None if print_scene or render_to is not None else _access(host, port, token_file, no_auth, allow_origin)
    with demo_scene() as scene_file:
        if print_scene:
            click.echo(str(scene_file))
        elif offline:
            _show(Scene.from_file(scene_file), render_to, host, port, view, open_browser, access)
        else:
            _demo_onemap(scene_file, render_to, host, port, view, open_browser, access)


def _demo_onemap(scene_file: Path, render_to: Path | None, host: str, port: int, view: str, open_browser: bool, access: Any) -> None:
    """``twin demo`` through the local one-map server; raises MissingDependencyError without pygeoapi."""
    from twin.demo.onemap import OneMapDemo, pygeoapi_command, route_through
    from twin.scene.model import Scene
    from twin.scene.yamlfile import load_yaml, read_scene_text

    pygeoapi_command()  # says which extra to install before anything starts
    click.echo("twin: starting the local one-map server (pygeoapi) ...")
    with OneMapDemo() as onemap:
        click.echo(f"twin: one-map server at {onemap.url}")
        data, lines = load_yaml(read_scene_text(scene_file), scene_file)  # the scene loader's YAML rules (yes stays text)
        data.pop("time", None)  # the feeder writes readings as of now: show now
        scene = Scene.from_dict(route_through(data, onemap.url), file=str(scene_file), lines=lines, base_dir=scene_file.parent)
        _show(scene, render_to, host, port, view, open_browser, access)
    click.echo("twin: one-map server stopped")


def _show(scene: Any, render_to: Path | None, host: str, port: int, view: str, open_browser: bool, access: Any, *,
          kiosk: bool = False, lang: str | None = None) -> None:
    """Render ``scene`` to ``render_to``, or serve it with the ``access`` policy (None only when rendering); ``kiosk``: as the hall's wall."""
    if render_to is not None:
        path = scene.screenshot(render_to, size=(1920, 1080))
        click.echo(f"wrote {path}")
        return
    from twin.app.server import TwinApp
    from twin.render.vtk_setup import steady_rasterizer

    steady_rasterizer()  # a server's memory must not follow what its view shows (before its first frame)
    app = TwinApp(scene, view_mode=view, kiosk=kiosk, lang=lang, stream=True)  # the page first, the scene loads behind it
    how = "open it with ?token=YOUR_TOKEN once; " if access.tokens else ""
    click.echo(f"twin: serving {scene.name!r} at http://{host}:{port}/ ({how}Ctrl+C stops)")
    app.start(host=host, port=port, open_browser=open_browser, access=access)


def _seconds(ctx: click.Context, param: click.Parameter, value: str) -> float:
    from twin.alerts.rules import parse_duration

    try:
        seconds = parse_duration(value).total_seconds()
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if seconds <= 0:
        raise click.BadParameter(f"{value!r} must be longer than 0, e.g. 30m")
    return seconds


@cli.command()
@click.argument("scenes", type=click.Path(path_type=Path))
@_host
@_port
@_view
@_auth
@click.option("--sessions", default=4, show_default=True, type=click.IntRange(min=1),
              help="Most planner sessions at once; each is one app process (docs/serving.md says what one costs).")
@click.option("--idle-timeout", default="30m", show_default=True, callback=_seconds, metavar="DURATION",
              help="Close a session after this long without input from its page, e.g. 90s, 30m, 2h.")
@click.option("--start-timeout", default="5m", show_default=True, callback=_seconds, metavar="DURATION",
              help="How long a session's app may take to load its scene before the planner is shown an error.")
def hub(scenes: Path, host: str, port: int, view: str, token_file: Path | None, no_auth: bool, allow_origin: tuple[str, ...],
        sessions: int, idle_timeout: float, start_timeout: float) -> None:
    """Serve a folder of scenes (or one SCENES file) to many planners, each in an independent session of their own.

    The front page lists the folder's .yaml scenes; opening one starts an app process for that browser alone
    (its own camera, layers, time and picks). Access rules are those of `twin serve` (docs/serving.md).
    """
    from twin.hub.front import HubSettings, run_hub
    from twin.hub.scenes import list_scenes

    access = _access(host, port, token_file, no_auth, allow_origin)
    listed = list_scenes(scenes)
    for entry in listed:
        if entry.error:
            click.echo(f"twin: warning: scene {entry.path.name} is listed but cannot be opened: {entry.error}", err=True)
    logging.getLogger("twin.hub").setLevel(logging.INFO)  # session starts and stops (ids, never tokens)
    how = "open it with ?token=YOUR_TOKEN once; " if access.tokens else ""
    click.echo(f"twin: hub of {len(listed)} scene{'s' * (len(listed) != 1)} at http://{host}:{port}/ "
               f"(at most {sessions} session{'s' * (sessions != 1)}; {how}Ctrl+C stops)")
    run_hub(HubSettings(scenes, sessions=sessions, idle_timeout=idle_timeout, view=view, ready_timeout=start_timeout), host=host, port=port, access=access)


@cli.command()
def warmup() -> None:
    """Compile twin's kernels now (setup runs this), so no later command waits on a compile."""
    import time

    from twin.warmup import warm_up

    start = time.perf_counter()
    warm_up(lambda step, seconds: click.echo(f"twin: warmup: {step}: {seconds:.1f} s"))
    click.echo(f"twin: warmup: done in {time.perf_counter() - start:.1f} s (compiled kernels cached)")


def _column(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str | None]:
    columns: dict[str, str | None] = {}
    for value in values:
        field, sep, column = value.partition("=")
        if not sep or not field:
            raise click.BadParameter(f"{value!r} is not FIELD=COLUMN, e.g. time=ts or sensor_id= (no sensor column)")
        columns[field.strip()] = column.strip() or None
    return columns


@cli.command()
@click.argument("readings_dir", type=click.Path(path_type=Path), required=False)
@click.option("--out", "-o", type=click.Path(path_type=Path), default=None, help="Parquet file to write (cells per window; the h3 layer reads it).")
@click.option("--res", "resolution", type=click.IntRange(0, 15), default=9, show_default=True, help="H3 resolution.")
@click.option("--window", default="5m", show_default=True, help="Window length, e.g. 5m, 1h (windows are aligned to the epoch, end inclusive).")
@click.option("--scheduler", default=None, help="Dask scheduler address, e.g. tcp://10.0.0.5:8786 (default: run in this process).")
@click.option("--column", "columns", multiple=True, callback=_column, help="FIELD=COLUMN: the dataset's column for sensor_id, lon, lat, time or value (repeatable).")
@click.option("--time-zone", default="UTC", show_default=True, help="Time zone of naive times in the data.")
@click.option("--scene", "scene_file", type=click.Path(path_type=Path), default=None,
              help="Instead: make the aggregate of every h3 layer of this scene whose source is h3_aggregate with readings (on its scheduler).")
@click.option("--now", default=None, help="Readings later than this (+5 min) are dropped as future times (default: now).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def aggregate(
    readings_dir: Path | None, out: Path | None, resolution: int, window: str, scheduler: str | None, columns: dict[str, str | None], time_zone: str,
    scene_file: Path | None, now: str | None, no_progress: bool,
) -> None:
    """Aggregate READINGS_DIR (Parquet, hive-partitioned by day=YYYY-MM-DD) per H3 cell and window: count, sum, mean, max."""
    import datetime as dt

    from twin.aggregate import aggregate_readings, list_partitions
    from twin.aggregate.partition import AggregateSpec

    when = _aware(now) if now else dt.datetime.now(dt.timezone.utc)
    if scene_file is not None:
        _aggregate_scene(scene_file, when, no_progress)
        return
    if readings_dir is None or out is None:
        raise click.UsageError("give READINGS_DIR and --out (or --scene SCENE)")
    days = len(list_partitions(readings_dir, AggregateSpec(resolution=resolution, window=window, columns=columns, now=when)))
    with _progress(days, no_progress) as step:
        summary = aggregate_readings(readings_dir, out, resolution=resolution, window=window, columns=columns, scheduler=scheduler, now=when, time_zone=time_zone, progress=step)
    for line in summary.lines():
        click.echo(f"twin: aggregate: {line}")
    click.echo(f"twin: aggregate: wrote {out}")


def _aggregate_scene(scene_file: Path, now: Any, no_progress: bool) -> None:
    """Make the aggregate of each h3 layer of the scene whose h3_aggregate source names its readings."""
    from twin.plugins import source_types
    from twin.scene.model import Scene

    aggregate_source = source_types().get("h3_aggregate")
    scene = Scene.from_file(scene_file)
    made = 0
    for layer in scene.layers:
        source = layer.source
        if isinstance(source, aggregate_source) and source.params.readings is not None:  # type: ignore[attr-defined]
            with _progress(None, no_progress) as step:
                summary = source.build(layer.params.resolution, layer.params.window, progress=step, now=now)  # type: ignore[attr-defined]
            for line in summary.lines():
                click.echo(f"twin: aggregate: layer {layer.id}: {line}")
            click.echo(f"twin: aggregate: layer {layer.id}: wrote {source.resolved_path}")
            made += 1
    if not made:
        raise click.UsageError(f"{scene_file}: no h3 layer with an h3_aggregate source that names its readings")


class _progress:
    """A tqdm bar over days (on stderr) as a context manager giving the step callback."""

    def __init__(self, days: int | None, disable: bool) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=days, unit="day", disable=disable, file=sys.stderr)

    def __enter__(self) -> Any:
        def step(partial: Any) -> None:
            self.bar.set_postfix_str(f"{partial.key}: {partial.rows_read:,} readings")
            self.bar.update()

        return step

    def __exit__(self, *exc: object) -> None:
        self.bar.close()


def _aware(text: str) -> Any:
    import pandas as pd

    try:
        stamp = pd.Timestamp(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a time, e.g. 2026-07-01T18:00+08:00", param_hint="--now") from None
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp).to_pydatetime()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``twin`` command; returns the exit code."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        cli.main(args=args, prog_name="twin", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("twin: aborted", err=True)
        return 130
    except click.exceptions.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except TwinError as exc:
        if debug:
            raise
        click.echo(f"twin: error: {exc}", err=True)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # never a traceback to a user without --debug
        if debug:
            raise
        click.echo(f"twin: error: unexpected {type(exc).__name__}: {exc} (run with --debug for details)", err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
