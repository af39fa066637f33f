"""Task options with AWS DataSync's names and values, validated when the task is defined.

``TaskOptions.from_dict({"VerifyMode": "NONE", ...})`` takes the same dict as DataSync's ``Options``
API field, so a DataSync task definition carries over unchanged. Unknown names and bad values raise
:class:`OptionsError` naming the option and the allowed values.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_datasync.filters import FilterError, compile_filter

if TYPE_CHECKING:
    from airflow_datasync.locations.base import Location


class OptionsError(ValueError):
    """An option name, value or combination is invalid; the message names it and the fix."""


@dataclass(frozen=True)
class OptionSpec:
    """One option: its name, type, allowed values, default and help, in DataSync's words.

    :data:`OPTION_SPECS` is the one schema of the options: :class:`TaskOptions` validates against it, and
    :func:`airflow_datasync.params.datasync_params` builds the trigger form's Params from it, so the form,
    the CLI and the DAG accept the same values.
    """

    name: str
    kind: str  #: "choice", "integer", "auto_integer" ("auto" or an integer), "boolean", "filter" or "manifest"
    default: Any
    section: str
    title: str
    description: str
    #: Allowed values with a label each (the form's drop-down shows the label).
    choices: dict[str, str] = field(default_factory=dict)
    #: DataSync values we recognise but do not implement yet: refused with a clear message, never ignored.
    not_yet: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    #: Where the value lives in a TaskOptions: a field, or "TaskReportConfig.<field>".
    target: str | None = None
    #: ``None`` is allowed (the form shows an optional field), meaning ``null_means``.
    nullable: bool = False
    null_means: Any = None

    @property
    def path(self) -> str:
        return self.target or self.name

    def check(self, value: Any) -> None:
        """Raise :class:`OptionsError` naming the option and what it accepts, unless ``value`` fits."""
        if self.kind == "choice":
            if value in self.not_yet:
                raise OptionsError(f"{self.path}={value!r} is a DataSync value that airflow-datasync does not "
                                   f"support yet; use one of {', '.join(self.choices)}")
            if value not in self.choices:
                raise OptionsError(f"{self.path}={value!r} is invalid; use one of {', '.join(self.choices)}")
        elif self.kind == "boolean":
            if not isinstance(value, bool):
                raise OptionsError(f"{self.path}={value!r} is invalid; use true or false")
        elif self.kind == "integer":
            lowest = self.minimum if self.minimum is not None else 1
            valid = isinstance(value, int) and not isinstance(value, bool) and (
                (value >= lowest and (self.maximum is None or value <= self.maximum))
                or (self.nullable and value == self.null_means))
            if not valid:
                if self.name == "BytesPerSecond":
                    raise OptionsError(f"BytesPerSecond={value!r} is invalid; use -1 (no limit) or a positive integer")
                if self.maximum is not None:
                    raise OptionsError(f"{self.path}={value!r} is invalid; use an integer from {lowest} to {self.maximum}")
                if self.nullable:
                    raise OptionsError(f"{self.path}={value!r} is invalid; use {self.null_means} (no limit) or an "
                                       f"integer of at least {lowest}")
                raise OptionsError(f"{self.path}={value!r} is invalid; use a positive integer"
                                   + (" (or 0 for the locations' default)" if lowest == 0 else ""))
        elif self.kind == "auto_integer":
            lowest = self.minimum if self.minimum is not None else 1
            if value != "auto" and (not isinstance(value, int) or isinstance(value, bool) or value < lowest):
                raise OptionsError(f"{self.path}={value!r} is invalid; use \"auto\" or an integer of at least {lowest}")
        elif self.kind == "manifest" and value is not None:
            check_manifest_config(value)


def check_manifest_config(config: Any) -> None:
    """Raise :class:`OptionsError` unless ``config`` is a ManifestConfig both engines take: DataSync's
    ``{"Action": "TRANSFER", "Format": "CSV", "Source": {"S3": {...}}}``, or the native engine's
    ``"Source": {"Uri": "<location URI of the CSV file>", "ConnId": "<optional connection id>"}``."""
    if not isinstance(config, dict):
        raise OptionsError(f"ManifestConfig must be a dict, got {type(config).__name__}")
    unknown = sorted(set(config) - {"Action", "Format", "Source"})
    if unknown:
        raise OptionsError(f"ManifestConfig: unknown key(s) {unknown}; use Action, Format and Source")
    if config.get("Action", "TRANSFER") != "TRANSFER":
        raise OptionsError(f"ManifestConfig.Action={config['Action']!r} is invalid; use TRANSFER")
    if config.get("Format", "CSV") != "CSV":
        raise OptionsError(f"ManifestConfig.Format={config['Format']!r} is invalid; use CSV")
    source = config.get("Source")
    if not isinstance(source, dict) or len(source) == 0:
        raise OptionsError("ManifestConfig.Source is required: {'S3': {'S3BucketArn': ..., 'ManifestObjectPath': ..., "
                           "'BucketAccessRoleArn': ...}} or {'Uri': '<location URI of the CSV file>', 'ConnId': ...}")
    if "S3" in source:
        s3 = source["S3"]
        if set(source) != {"S3"} or not isinstance(s3, dict):
            raise OptionsError("ManifestConfig.Source: give either S3 or Uri (with an optional ConnId), not both")
        bad = sorted(set(s3) - {"S3BucketArn", "ManifestObjectPath", "BucketAccessRoleArn", "ManifestObjectVersionId"})
        if bad:
            raise OptionsError(f"ManifestConfig.Source.S3: unknown key(s) {bad}")
        for key in ("S3BucketArn", "ManifestObjectPath"):
            if not isinstance(s3.get(key), str) or not s3[key]:
                raise OptionsError(f"ManifestConfig.Source.S3.{key} is required (a string)")
        if not s3["S3BucketArn"].startswith("arn:"):
            raise OptionsError(f"ManifestConfig.Source.S3.S3BucketArn={s3['S3BucketArn']!r} is not an ARN; "
                               "use arn:aws:s3:::<bucket>")
    else:
        bad = sorted(set(source) - {"Uri", "ConnId"})
        if bad or not isinstance(source.get("Uri"), str) or not source["Uri"].strip():
            raise OptionsError("ManifestConfig.Source needs S3 (DataSync's form) or Uri (a location URI of the CSV "
                               f"file) with an optional ConnId; got keys {sorted(source)}")
        if source.get("ConnId") is not None and not isinstance(source["ConnId"], str):
            raise OptionsError("ManifestConfig.Source.ConnId must be a connection id (a string)")


def _choice(name: str, default: str, title: str, description: str, choices: dict[str, str], **kw: Any) -> OptionSpec:
    return OptionSpec(name, "choice", default, kw.pop("section", "Options"), title, description, choices, **kw)


#: The options, in the order the trigger form shows them. Descriptions follow DataSync's API reference.
OPTION_SPECS: tuple[OptionSpec, ...] = (
    OptionSpec("dry_run", "boolean", False, "Options", "Dry run",
               "Run LAUNCHING and PREPARING only: the report lists what would be copied, skipped and deleted, "
               "and nothing is written at the destination."),
    _choice("TransferMode", "CHANGED", "Transfer mode",
            "Whether DataSync transfers only the data (including metadata) that differs between locations "
            "after an initial copy, or all data every time the task runs.",
            {"CHANGED": "CHANGED: only what is new or changed at the source",
             "ALL": "ALL: everything, without comparing with the destination"}),
    _choice("VerifyMode", "ONLY_FILES_TRANSFERRED", "Verify mode",
            "Whether and how DataSync checks the integrity of the data at the end of the transfer.",
            {"ONLY_FILES_TRANSFERRED": "ONLY_FILES_TRANSFERRED: checksums of the transferred files",
             "POINT_IN_TIME_CONSISTENT": "POINT_IN_TIME_CONSISTENT: scan and compare both locations fully",
             "NONE": "NONE: integrity checks during the transfer only"}),
    _choice("OverwriteMode", "ALWAYS", "Overwrite mode",
            "Whether DataSync modifies data at the destination when the source data (including metadata) has "
            "changed (ALWAYS), or never overwrites it (NEVER).",
            {"ALWAYS": "ALWAYS: overwrite changed data", "NEVER": "NEVER: keep what the destination has"}),
    _choice("PreserveDeletedFiles", "PRESERVE", "Keep deleted files",
            "Whether files at the destination that do not exist at the source are kept (PRESERVE) or deleted "
            "(REMOVE). REMOVE cannot be combined with TransferMode ALL.",
            {"PRESERVE": "PRESERVE: keep them (recommended)", "REMOVE": "REMOVE: delete them"}),
    OptionSpec("max_deletes", "integer", -1, "Options", "Deletion cap (entries)",
               "With PreserveDeletedFiles REMOVE: refuse the execution in PREPARING, before anything is copied "
               "or deleted, when it would delete more than this many entries at the destination. Empty: no "
               "limit by count (max_delete_percent still applies).",
               minimum=0, nullable=True, null_means=-1),
    OptionSpec("max_delete_percent", "integer", 50, "Options", "Deletion cap (% of the destination)",
               "With PreserveDeletedFiles REMOVE: refuse the execution in PREPARING when it would delete more "
               "than this percentage of the destination's entries (in scope of the filters), from 10 deletions on. 100: no limit.",
               minimum=0, maximum=100),
    OptionSpec("allow_empty_source_delete", "boolean", False, "Options", "Allow REMOVE from an empty source",
               "With PreserveDeletedFiles REMOVE, an empty source (an unmounted NFS export looks like one) is "
               "refused unless this is true, whatever the caps say: it would delete the whole destination."),
    _choice("Mtime", "PRESERVE", "Modification time",
            "Whether to preserve the time a file was last written to before PREPARING; needed to run the "
            "task more than once.",
            {"PRESERVE": "PRESERVE: keep the original Mtime (recommended)", "NONE": "NONE: ignore Mtime"}),
    _choice("Atime", "BEST_EFFORT", "Access time",
            "Whether to preserve the time a file was last read or written to. BEST_EFFORT requires Mtime "
            "PRESERVE; NONE requires Mtime NONE.",
            {"BEST_EFFORT": "BEST_EFFORT: try to keep the original Atime", "NONE": "NONE: ignore Atime"}),
    _choice("Uid", "INT_VALUE", "Owner (UID)", "The POSIX user ID of the file's owner.",
            {"INT_VALUE": "INT_VALUE: keep the numeric UID (recommended)",
             "NAME": "NAME: map by user name", "BOTH": "BOTH: by name where known, else the numeric UID",
             "NONE": "NONE: ignore the UID"}),
    _choice("Gid", "INT_VALUE", "Group (GID)", "The POSIX group ID of the file's owners.",
            {"INT_VALUE": "INT_VALUE: keep the numeric GID (recommended)",
             "NAME": "NAME: map by group name", "BOTH": "BOTH: by name where known, else the numeric GID",
             "NONE": "NONE: ignore the GID"}),
    _choice("PosixPermissions", "PRESERVE", "POSIX permissions",
            "Which users or groups can read, write or execute a file.",
            {"PRESERVE": "PRESERVE: keep POSIX permissions (recommended)", "NONE": "NONE: ignore them"}),
    _choice("PreserveDevices", "NONE", "Devices",
            "Whether to recreate block and character devices and their metadata at the destination.",
            {"NONE": "NONE: ignore special devices (recommended)"}, not_yet=("PRESERVE",)),
    _choice("SecurityDescriptorCopyFlags", "OWNER_DACL", "SMB security descriptor",
            "Which components of the SMB security descriptor are copied from source to destination objects.",
            {"OWNER_DACL": "OWNER_DACL: owner and DACLs", "OWNER_DACL_SACL": "OWNER_DACL_SACL: owner, DACLs and SACLs",
             "NONE": "NONE: none of them"}),
    _choice("ObjectTags", "PRESERVE", "Object tags",
            "Whether object tags are kept when transferring between object storage systems.",
            {"PRESERVE": "PRESERVE: keep object tags", "NONE": "NONE: do not copy them"}),
    _choice("TaskQueueing", "ENABLED", "Task queueing",
            "Whether executions of the task are queued when several run at once.",
            {"ENABLED": "ENABLED", "DISABLED": "DISABLED"}),
    _choice("LogLevel", "BASIC", "Log level",
            "What the task logs: nothing (OFF), errors and progress (BASIC), or every file transferred (TRANSFER).",
            {"OFF": "OFF", "BASIC": "BASIC", "TRANSFER": "TRANSFER"}),
    OptionSpec("Includes", "filter", None, "Filters", "Include filters",
               "Which files, objects and folders of the source to transfer: patterns such as /folder1 or *.csv "
               "(a list, or one string joined with |). Empty: everything."),
    OptionSpec("Excludes", "filter", None, "Filters", "Exclude filters",
               "Which files, objects and folders of the source not to transfer: patterns such as *.tmp or "
               "/scratch (a list, or one string joined with |)."),
    OptionSpec("ManifestConfig", "manifest", None, "Filters", "Manifest (list of files)",
               "Transfer exactly the files listed in a CSV manifest (one path per line, relative to the source "
               "location): {\"Action\": \"TRANSFER\", \"Format\": \"CSV\", \"Source\": {\"Uri\": "
               "\"s3://bucket/list.csv\", \"ConnId\": \"...\"}} or DataSync's Source.S3 form. Empty: the whole source."),
    OptionSpec("BytesPerSecond", "integer", -1, "Throttling", "Bandwidth limit (bytes per second)",
               "Limits the bandwidth the task uses, e.g. 1048576 for at most 1 MiB/s. Empty: no limit.",
               minimum=1, nullable=True, null_means=-1),
    _choice("ReportOutputType", "STANDARD", "Report type",
            "SUMMARY_ONLY: the counters, status and durations of the execution. STANDARD: also the per-file "
            "report of everything transferred, skipped, deleted and verified.",
            {"STANDARD": "STANDARD: summary and per-file report", "SUMMARY_ONLY": "SUMMARY_ONLY: summary only"},
            section="Report", target="TaskReportConfig.OutputType"),
    _choice("ReportLevel", "SUCCESSES_AND_ERRORS", "Report level",
            "Whether the per-file report lists only what went wrong or also what succeeded.",
            {"SUCCESSES_AND_ERRORS": "SUCCESSES_AND_ERRORS: every entry", "ERRORS_ONLY": "ERRORS_ONLY: failures only"},
            section="Report", target="TaskReportConfig.ReportLevel"),
    OptionSpec("files_per_shard", "integer", 10_000, "Engine", "Files per shard",
               "At most this many entries per TRANSFERRING task (one mapped task instance per shard)."),
    OptionSpec("bytes_per_shard", "integer", 10 * 1024**3, "Engine", "Bytes per shard",
               "At most about this many bytes per TRANSFERRING task (a larger file gets a shard of its own)."),
    OptionSpec("stripe_threshold_bytes", "integer", 4 * 1024**3, "Engine", "Stripe files from (bytes)",
               "A file of at least this many bytes is copied in ranges of stripe_bytes by separate TRANSFERRING "
               "tasks (on any workers) and published whole by FINALIZE; 0: never. Destinations: local, SMB, S3.",
               minimum=0),
    OptionSpec("stripe_bytes", "integer", 1024**3, "Engine", "Stripe range (bytes)",
               "The range each task of a striped file copies (5 MiB to 5 GiB, S3's part limits); enlarged for a "
               "file that would need more than 10,000 ranges.", minimum=5 * 1024**2, maximum=5 * 1024**3),
    OptionSpec("max_shards", "integer", 1024, "Engine", "Maximum shards",
               "At most this many shards (and Airflow's [core] max_map_length); shards grow to fit."),
    OptionSpec("prepare_partitions", "auto_integer", "auto", "Engine", "PREPARING partitions",
               "Lists and plans the tree in up to this many PREPARING tasks, each over its own top-level folders "
               "(local and S3 locations); auto: one per million entries the last execution of this task listed, "
               "one when there was none; 1: one task lists everything.", minimum=1),
    OptionSpec("concurrency", "integer", 0, "Engine", "Concurrency",
               "Entries copied at once per transfer task; 0 lets the locations choose (local 8, SMB 16, S3 64).",
               minimum=0),
    OptionSpec("transfer_processes", "auto_integer", "auto", "Engine", "Copy processes",
               "Processes that copy a shard's files (each with its threads and its own connections), so that "
               "copies costing interpreter time use more than one core; auto: one per usable CPU (at most 4) for "
               "shards with many small files, else 1; 1: the task's own process only.", minimum=1),
    OptionSpec("preserve_hard_links", "boolean", False, "Engine", "Keep hard links",
               "Between file systems, names of one file at the source (hard links) become names of one file at the "
               "destination, copied once (like rsync -H; DataSync keeps them between NFS-like file systems). "
               "Off: each name is copied as an independent file, and the report counts them."),
    OptionSpec("sync_writes", "boolean", True, "Engine", "Flush writes",
               "Flush the destination file system before a shard records itself complete, so a power cut never "
               "leaves entries marked done whose data was still in memory."),
)
SPECS: dict[str, OptionSpec] = {spec.name: spec for spec in OPTION_SPECS}
#: Specs by where they live in a TaskOptions ("VerifyMode", "TaskReportConfig.OutputType", ...).
_BY_PATH: dict[str, OptionSpec] = {spec.path: spec for spec in OPTION_SPECS}
#: The allowed values of each TaskOptions choice field (derived from the specs).
_CHOICES: dict[str, tuple[str, ...]] = {spec.name: tuple(spec.choices) for spec in OPTION_SPECS
                                        if spec.kind == "choice" and spec.target is None}


def option_schema() -> dict[str, dict[str, Any]]:
    """The JSON Schema of each option, by name (what the trigger form's Params are made of)."""
    return {spec.name: json_schema(spec) for spec in OPTION_SPECS}


def json_schema(spec: OptionSpec) -> dict[str, Any]:
    """One option as JSON Schema, with the attributes Airflow's trigger form renders (section, title, ...)."""
    schema: dict[str, Any] = {"title": spec.title, "description": spec.description, "section": spec.section}
    if spec.kind == "choice":
        schema.update(type="string", enum=list(spec.choices), values_display=dict(spec.choices))
    elif spec.kind == "boolean":
        schema.update(type="boolean")
    elif spec.kind == "integer":
        schema.update(type=["null", "integer"] if spec.nullable else "integer",
                      minimum=spec.minimum if spec.minimum is not None else 1)
        if spec.maximum is not None:
            schema.update(maximum=spec.maximum)
    elif spec.kind == "auto_integer":
        schema.update(type=["string", "integer"], pattern="^auto$", minimum=spec.minimum or 1)
    elif spec.kind == "manifest":
        schema.update(type=["null", "object"])
    elif spec.kind == "filter":
        # One string "a|b" as DataSync takes it, or a list of patterns; the form shows a free text field.
        schema.update(type=["null", "string", "array"], items={"type": "string"})
    return schema


@dataclass(frozen=True)
class TaskReportConfig:
    """DataSync's ``TaskReportConfig``: ``OutputType`` SUMMARY_ONLY writes only the JSON summary; STANDARD
    adds the per-file Parquet report, with only failures (ERRORS_ONLY) or every file (SUCCESSES_AND_ERRORS)."""

    OutputType: str = "STANDARD"
    ReportLevel: str = "SUCCESSES_AND_ERRORS"

    def __post_init__(self) -> None:
        _BY_PATH["TaskReportConfig.OutputType"].check(self.OutputType)
        _BY_PATH["TaskReportConfig.ReportLevel"].check(self.ReportLevel)


#: Files smaller than this on average are "small" to :meth:`TaskOptions.small_file_workers`: their reads and
#: writes take one chunk each (the copy's buffer), so the interpreter lock is released only for microseconds.
SMALL_FILE_BYTES = 1 << 20
#: A file larger than this makes a shard's files not "small" whatever their average: on one thread it would
#: hold up every small file behind it for as long as it takes to copy.
SMALL_SHARD_LARGEST_BYTES = 64 << 20


@dataclass(frozen=True)
class TaskOptions:
    """DataSync task options (defaults as DataSync's, except VerifyMode: see docs/options.md).

    Engine settings that DataSync does not expose (shard size, concurrency) are lower-case fields.
    """

    VerifyMode: str = "ONLY_FILES_TRANSFERRED"
    OverwriteMode: str = "ALWAYS"
    Atime: str = "BEST_EFFORT"
    Mtime: str = "PRESERVE"
    Uid: str = "INT_VALUE"
    Gid: str = "INT_VALUE"
    PreserveDeletedFiles: str = "PRESERVE"
    PreserveDevices: str = "NONE"
    PosixPermissions: str = "PRESERVE"
    BytesPerSecond: int = -1
    TaskQueueing: str = "ENABLED"
    LogLevel: str = "BASIC"
    TransferMode: str = "CHANGED"
    SecurityDescriptorCopyFlags: str = "OWNER_DACL"
    ObjectTags: str = "PRESERVE"
    Includes: str | None = None
    Excludes: str | None = None
    #: DataSync's ManifestConfig (or its native form, see :func:`check_manifest_config`): transfer only the
    #: files a CSV manifest lists, without listing the source.
    ManifestConfig: dict[str, Any] | None = None
    TaskReportConfig: TaskReportConfig = field(default_factory=TaskReportConfig)
    # Engine settings (not DataSync options).
    files_per_shard: int = 10_000
    bytes_per_shard: int = 10 * 1024**3
    max_shards: int = 1024
    #: Files of at least this many bytes are striped: copied in ranges of ``stripe_bytes`` by separate
    #: TRANSFERRING tasks and published whole by FINALIZE (phases/stripes.py); 0 turns striping off.
    stripe_threshold_bytes: int = 4 * 1024**3
    stripe_bytes: int = 1024**3
    #: Entries copied at once per transfer task; 0 = chosen by the two locations (local 8, SMB 16, S3 64).
    concurrency: int = 0
    #: Processes copying one shard's files: "auto" (see phases/copy_processes.py) or a number; 1 = this one.
    transfer_processes: int | str = "auto"
    #: PREPARING tasks over partitions of the top-level names: "auto" (see phases/key_space.py) or a number.
    prepare_partitions: int | str = "auto"
    #: Flush the destination file system (one syncfs) before a shard records itself complete, so a power
    #: cut never leaves "done" entries whose data was still in memory. False trades that for speed, as
    #: cp and rclone do (2 x 500 MB locally: the flush took 0.67 s of a 1.1 s copy here).
    sync_writes: bool = True
    #: Names of one source file (hard links) become names of one destination file, where the destination
    #: holds hard links (a file system); off, each is an independent copy, counted in the report.
    preserve_hard_links: bool = False
    #: LAUNCHING and PREPARING only: the report says what a run would do; nothing is written at the destination.
    dry_run: bool = False
    #: The deletion cap (PreserveDeletedFiles=REMOVE), checked in PREPARING before anything is copied: at
    #: most this many deletions (-1: no count limit) and this percentage of the destination's entries.
    max_deletes: int = -1
    max_delete_percent: int = 50
    #: REMOVE from an empty source deletes the whole destination: refused unless this is True.
    allow_empty_source_delete: bool = False

    def __post_init__(self) -> None:
        for spec in OPTION_SPECS:
            if spec.kind in ("choice", "integer", "auto_integer", "boolean", "manifest") and spec.target is None:
                spec.check(getattr(self, spec.name))
        if self.PreserveDeletedFiles == "REMOVE" and self.TransferMode == "ALL":
            raise OptionsError("PreserveDeletedFiles=REMOVE cannot be combined with TransferMode=ALL "
                               "(as in DataSync: ALL does not scan the destination for deletions)")
        if self.ManifestConfig is not None and self.PreserveDeletedFiles == "REMOVE":
            raise OptionsError("PreserveDeletedFiles=REMOVE cannot be combined with ManifestConfig (as in DataSync: "
                               "a manifest transfers the files it lists and never deletes); use PRESERVE")
        if self.stripe_threshold_bytes and self.stripe_threshold_bytes <= self.stripe_bytes:
            raise OptionsError(f"stripe_threshold_bytes={self.stripe_threshold_bytes} must be above stripe_bytes="
                               f"{self.stripe_bytes} (a striped file has at least two ranges), or 0 to stripe nothing")
        if self.Atime == "BEST_EFFORT" and self.Mtime == "NONE":
            raise OptionsError("Atime=BEST_EFFORT requires Mtime=PRESERVE (as in DataSync); set Atime=NONE with Mtime=NONE")
        if self.Atime == "NONE" and self.Mtime == "PRESERVE":
            raise OptionsError("Atime=NONE requires Mtime=NONE (as in DataSync); use Atime=BEST_EFFORT to keep Mtime")
        for name in ("Includes", "Excludes"):
            try:
                compile_filter(getattr(self, name))
            except FilterError as exc:
                raise OptionsError(f"{name}: {exc}") from None

    # -- construction -----------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, options: dict[str, Any] | None = None, **extra: Any) -> TaskOptions:
        """Build from DataSync's ``Options`` dict plus optional Includes/Excludes/TaskReportConfig/engine keys.

        Filters may be given as DataSync's ``[{"FilterType": "SIMPLE_PATTERN", "Value": "..."}]`` too,.
        """
        merged = copy.deepcopy(dict(options or {}))
        merged.update(copy.deepcopy(extra))
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(merged) - known)
        if unknown:
            raise OptionsError(f"unknown option(s) {', '.join(map(repr, unknown))}; known options: {', '.join(sorted(known))}")
        for name in ("Includes", "Excludes"):
            if isinstance(merged.get(name), list):
                merged[name] = _filter_rules_to_string(name, merged[name])
        if "BytesPerSecond" in merged and isinstance(merged["BytesPerSecond"], str):
            try:
                merged["BytesPerSecond"] = int(merged["BytesPerSecond"])
            except ValueError:
                raise OptionsError(f"BytesPerSecond={merged['BytesPerSecond']!r} is not an integer") from None
        report = merged.get("TaskReportConfig")
        if isinstance(report, dict):
            bad = sorted(set(report) - {"OutputType", "ReportLevel"})
            if bad:
                raise OptionsError(f"unknown TaskReportConfig key(s) {bad}; use OutputType and ReportLevel")
            merged["TaskReportConfig"] = TaskReportConfig(**report)
        elif report is not None and not isinstance(report, TaskReportConfig):
            raise OptionsError(f"TaskReportConfig must be a dict, got {report!r}")
        return cls(**merged)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def workers(self, *locations: Location) -> int:
        """Copy threads: ``concurrency``, or with 0 the largest :attr:`Capabilities.concurrency` of the
        locations involved (per-request latency dominates on object stores, so more requests in flight pay
        off there)."""
        if self.concurrency:
            return self.concurrency
        return max((loc.capabilities.concurrency for loc in locations), default=8)

    def verify_workers(self, *locations: Location) -> int:
        """Verification threads: ``concurrency``, or with 0 the smallest
        :attr:`Capabilities.verify_concurrency` a location declares (a file system hashing its files in the
        interpreter, which more threads only slow down), else as for copies."""
        if self.concurrency:
            return self.concurrency
        declared = [loc.capabilities.verify_concurrency for loc in locations
                    if loc.capabilities.verify_concurrency is not None]
        return min([*declared, self.workers(*locations)])

    def small_file_workers(self, workers: int, sizes: list[int | None], *locations: Location) -> int:
        """``workers`` threads for files of ``sizes``, or with ``concurrency`` 0 and files smaller than
        :data:`SMALL_FILE_BYTES` on average, the most :attr:`Capabilities.small_file_concurrency` of the
        locations, if every one declares it (a local disk's does: one thread), and none of the files is
        larger than :data:`SMALL_SHARD_LARGEST_BYTES`."""
        declared = [loc.capabilities.small_file_concurrency for loc in locations]
        if self.concurrency or not sizes or None in declared:
            return workers
        known = [s or 0 for s in sizes]
        if sum(known) >= SMALL_FILE_BYTES * len(known) or max(known) > SMALL_SHARD_LARGEST_BYTES:
            return workers
        return max(declared)

    @property
    def preserve_mtime(self) -> bool:
        return self.Mtime == "PRESERVE"


def _filter_rules_to_string(name: str, rules: list) -> str | None:
    values = []
    for rule in rules:
        if not isinstance(rule, dict) or rule.get("FilterType", "SIMPLE_PATTERN") != "SIMPLE_PATTERN" or "Value" not in rule:
            raise OptionsError(f"{name}: each rule must be {{'FilterType': 'SIMPLE_PATTERN', 'Value': '...'}}, got {rule!r}")
        values.append(rule["Value"])
    return "|".join(values) if values else None


def _check_schema_covers_fields() -> None:
    """Every TaskOptions field has exactly one spec with the same default: the form cannot drift from it."""
    fields = {f.name: f for f in dataclasses.fields(TaskOptions) if f.name != "TaskReportConfig"}
    fields.update({f"TaskReportConfig.{f.name}": f for f in dataclasses.fields(TaskReportConfig)})
    if set(fields) != set(_BY_PATH):
        raise RuntimeError(f"OPTION_SPECS and TaskOptions differ: {sorted(set(fields) ^ set(_BY_PATH))}")
    for path, f in fields.items():
        if f.default != _BY_PATH[path].default:
            raise RuntimeError(f"{path}: TaskOptions default {f.default!r}, OPTION_SPECS default {_BY_PATH[path].default!r}")


_check_schema_covers_fields()
