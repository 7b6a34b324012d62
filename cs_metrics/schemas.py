"""CS API shapes: In schemas validate requests (422 naming the field), Out schemas dump.

Out schemas dump plain dicts built by the API module (rows joined from several tables), so
each field reads a key, not an ORM attribute."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from marshmallow import Schema, ValidationError, fields, validate
from werkzeug.datastructures import FileStorage

from cs_metrics.health import Band
from cs_metrics.importers import KINDS
from cs_metrics.models import JobStatus
from cs_metrics.scorecards import MAX_CUSTOM_DAYS, NPS_GROUPS
from portal.core.api import Id, PageIn, PageMeta, StrictSchema

BANDS = [b.value for b in Band]
MAX_HISTORY_DAYS = 730
MAX_NPS_DAYS = MAX_CUSTOM_DAYS


class Upload(fields.Field):
    """A multipart file part; a plain form value in its place is a field error, not a 500."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, FileStorage) or not value.filename:
            raise ValidationError(str(_l('Send the CSV as a file part named "file".')))
        return value


class CsAccountListIn(PageIn):
    band = fields.Str(validate=validate.OneOf([*BANDS, "none"]))
    segment = fields.Str(validate=validate.Length(min=1, max=200))
    csm = Id()


class CsHealthIn(StrictSchema):
    history_days = fields.Int(load_default=90, validate=validate.Range(min=1, max=MAX_HISTORY_DAYS))


class CsNpsIn(StrictSchema):
    days = fields.Int(load_default=180, validate=validate.Range(min=1, max=MAX_NPS_DAYS))


class CsNpsListIn(CsNpsIn, PageIn):
    group_by = fields.Str(load_default="account", validate=validate.OneOf(NPS_GROUPS))


class CsImportIn(StrictSchema):
    """The form fields of a multipart upload (``file`` is the CSV itself)."""

    kind = fields.Str(required=True, validate=validate.OneOf(sorted(KINDS)))
    import_valid_rows = fields.Bool(
        load_default=False,
        metadata={"description": "Import the valid rows of a file with errors (else reject it)"},
    )
    day_first = fields.Bool(
        load_default=False, metadata={"description": "Read 01/03/2026 as 1 March"}
    )
    file = Upload(
        required=True,
        load_only=True,
        metadata={"type": "string", "format": "binary", "description": "The CSV file"},
    )


class CsCsmOut(Schema):
    id = fields.Int(required=True)
    display_name = fields.Str(required=True)


class CsHealthSummaryOut(Schema):
    day = fields.Date(allow_none=True)
    score = fields.Float(allow_none=True)
    band = fields.Str(allow_none=True)
    computed_score = fields.Float(allow_none=True)
    computed_band = fields.Str(allow_none=True)
    overridden = fields.Bool()


class CsAccountOut(Schema):
    id = fields.Int(required=True)
    name = fields.Str(required=True)
    external_id = fields.Str(allow_none=True)
    arr = fields.Decimal(
        allow_none=True, as_string=True, metadata={"type": "string", "format": "decimal"}
    )
    plan = fields.Str(allow_none=True)
    segment = fields.Str(allow_none=True)
    tier = fields.Str(allow_none=True)
    region = fields.Str(allow_none=True)
    renewal_date = fields.Date(allow_none=True)
    csm = fields.Nested(CsCsmOut, allow_none=True)
    health = fields.Nested(CsHealthSummaryOut, required=True)
    url = fields.Str(required=True)


class CsAccountDetailOut(CsAccountOut):
    slug = fields.Str(required=True)
    contract_start = fields.Date(allow_none=True)
    sales_owner_email = fields.Str(allow_none=True)
    industry = fields.Str(allow_none=True)
    product_version = fields.Str(allow_none=True)
    domain = fields.Str(allow_none=True)
    contacts = fields.Int(required=True)
    open_alerts = fields.Int(required=True)
    updated_at = fields.DateTime(allow_none=True)


class CsAccountPageOut(Schema):
    items = fields.List(fields.Nested(CsAccountOut), required=True)
    meta = fields.Nested(PageMeta, required=True)


class CsComponentOut(Schema):
    name = fields.Str(required=True)
    raw = fields.Float(allow_none=True)
    score = fields.Float(allow_none=True)
    weight = fields.Float(required=True)
    configured_share = fields.Float(allow_none=True)
    share = fields.Float(allow_none=True)
    contribution = fields.Float(allow_none=True)
    missing = fields.Bool(required=True)


class CsLatestHealthOut(Schema):
    day = fields.Date(required=True)
    score = fields.Float(allow_none=True)
    band = fields.Str(allow_none=True)
    complete = fields.Bool(required=True)
    model_version = fields.Str(required=True)
    components = fields.List(fields.Nested(CsComponentOut), required=True)
    effective_score = fields.Float(allow_none=True)
    effective_band = fields.Str(allow_none=True)


class CsOverrideOut(Schema):
    score = fields.Float(required=True)
    reason = fields.Str(required=True)
    expires_at = fields.DateTime(required=True)
    created_by_id = fields.Int(allow_none=True)
    created_at = fields.DateTime(required=True)


class CsHistoryPointOut(Schema):
    day = fields.Date(required=True)
    score = fields.Float(allow_none=True)
    band = fields.Str(allow_none=True)
    effective_score = fields.Float(allow_none=True)
    effective_band = fields.Str(allow_none=True)
    overridden = fields.Bool(required=True)
    model_version = fields.Str(required=True)


class CsAlertOut(Schema):
    kind = fields.Str(required=True)
    day = fields.Date(required=True)
    details = fields.Dict(required=True)


class CsHealthOut(Schema):
    organization_id = fields.Int(required=True)
    latest = fields.Nested(CsLatestHealthOut, allow_none=True)
    override = fields.Nested(CsOverrideOut, allow_none=True)
    history = fields.List(fields.Nested(CsHistoryPointOut), required=True)
    alerts = fields.List(fields.Nested(CsAlertOut), required=True)


class CsNpsOut(Schema):
    """An NPS with its 95% interval; ``nps`` and ``margin`` are null without responses."""

    n = fields.Int(required=True)
    promoters = fields.Int(required=True)
    passives = fields.Int(required=True)
    detractors = fields.Int(required=True)
    nps = fields.Float(allow_none=True)
    margin = fields.Float(allow_none=True)
    ci_low = fields.Float(allow_none=True)
    ci_high = fields.Float(allow_none=True)


class CsAccountNpsOut(CsNpsOut):
    organization_id = fields.Int(required=True)
    name = fields.Str(required=True)


class CsNpsGroupOut(CsNpsOut):
    key = fields.Str(
        allow_none=True,
        metadata={"description": "Account or CSM id, segment, or month (YYYY-MM); null: none"},
    )
    label = fields.Str(required=True)


class CsNpsOverviewOut(Schema):
    since = fields.Date(required=True)
    group_by = fields.Str(required=True)
    overall = fields.Nested(CsNpsOut, required=True)
    groups = fields.List(fields.Nested(CsNpsGroupOut), required=True)
    meta = fields.Nested(PageMeta, required=True)


class CsOneAccountNpsOut(Schema):
    since = fields.Date(required=True)
    account = fields.Nested(CsAccountNpsOut, required=True)


class CsImportErrorOut(Schema):
    line = fields.Int(allow_none=True)
    column = fields.Str(allow_none=True)
    field = fields.Str(allow_none=True)
    code = fields.Str(required=True)
    message = fields.Str(required=True)
    value = fields.Str(allow_none=True)


class CsFileErrorOut(Schema):
    field = fields.Str(allow_none=True)
    code = fields.Str(required=True)
    message = fields.Str(required=True)
    line = fields.Int(allow_none=True)


class CsImportWarningOut(Schema):
    code = fields.Str(required=True)
    message = fields.Str(required=True)


class CsImportReportOut(Schema):
    encoding = fields.Str(allow_none=True)
    delimiter = fields.Str(allow_none=True)
    columns = fields.List(fields.Str())
    rows_blank = fields.Int()
    errors = fields.List(fields.Nested(CsImportErrorOut))
    errors_truncated = fields.Bool()
    warnings = fields.List(fields.Nested(CsImportWarningOut))
    file_error = fields.Nested(CsFileErrorOut, allow_none=True)


class CsImportJobOut(Schema):
    id = fields.Int(required=True)
    kind = fields.Str(required=True)
    filename = fields.Str(required=True)
    status = fields.Str(required=True, validate=validate.OneOf([s.value for s in JobStatus]))
    import_valid_rows = fields.Bool(required=True)
    rows_total = fields.Int(required=True)
    rows_valid = fields.Int(required=True)
    rows_done = fields.Int(required=True)
    error_count = fields.Int(required=True)
    progress = fields.Float(
        required=True, metadata={"description": "0..1: rows imported / valid rows (1 when done)"}
    )
    finished = fields.Bool(required=True)
    report = fields.Nested(CsImportReportOut, required=True)
    status_url = fields.Str(required=True)
    created_at = fields.DateTime(required=True)
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)


class CsRecomputeRunOut(Schema):
    id = fields.Int(required=True)
    day = fields.Date(required=True)
    status = fields.Str(
        required=True, validate=validate.OneOf(["queued", "running", "done", "failed"])
    )
    requested_by_id = fields.Int(
        allow_none=True, metadata={"description": "null: the nightly run or the CLI"}
    )
    accounts_done = fields.Int(required=True)
    accounts_total = fields.Int(
        required=True, metadata={"description": "0 until the run has counted the accounts"}
    )
    progress = fields.Float(required=True, metadata={"description": "0..1 (1 when finished)"})
    finished = fields.Bool(required=True)
    alerts_raised = fields.Int(allow_none=True)
    bands = fields.Dict(
        keys=fields.Str(), values=fields.Int(), required=True,
        metadata={"description": "accounts by effective band, once done"},
    )  # fmt: skip
    status_url = fields.Str(required=True)
    created_at = fields.DateTime(required=True)
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)


class CsKpiIn(StrictSchema):
    """The period: ``kind`` month (``month=2026-03``), quarter (``quarter=2026-Q1``) or custom
    (``start``/``end``, both included); the current month by default."""

    kind = fields.Str(load_default="month", validate=validate.OneOf(["month", "quarter", "custom"]))
    month = fields.Str(validate=validate.Regexp(r"^\d{4}-\d{1,2}$"))
    quarter = fields.Str(validate=validate.Regexp(r"^\d{4}-?[Qq][1-4]$"))
    start = fields.Date()
    end = fields.Date()


class CsPeriodOut(Schema):
    start = fields.Date(required=True)
    end = fields.Date(required=True, metadata={"description": "The first day after the period"})
    label = fields.Str(required=True)
    kind = fields.Str(required=True)


class CsKpiOut(Schema):
    code = fields.Str(required=True)
    actual = fields.Float(allow_none=True)
    target = fields.Float(required=True)
    attainment = fields.Float(allow_none=True)
    met = fields.Bool(required=True)
    details = fields.Dict(required=True)


class CsScorecardOut(Schema):
    csm_id = fields.Int(required=True)
    name = fields.Str(required=True)
    accounts = fields.Int(required=True)
    tier_reached = fields.Int(required=True)
    kpis = fields.List(fields.Nested(CsKpiOut), required=True)


class CsRateOut(Schema):
    numerator = fields.Int(required=True)
    denominator = fields.Int(required=True)
    value = fields.Float(allow_none=True)


class CsOwnerRateOut(CsRateOut):
    owner = fields.Str(allow_none=True)


class CsRetentionOut(Schema):
    overall = fields.Nested(CsRateOut, required=True)
    by_owner = fields.List(fields.Nested(CsOwnerRateOut), required=True)


class CsTicketPointOut(Schema):
    period = fields.Str(required=True)
    tickets = fields.Int(required=True)
    active_accounts = fields.Int(required=True)
    per_account = fields.Float(allow_none=True)
    change = fields.Float(allow_none=True)
    percent_change = fields.Float(allow_none=True)


class CsProblemResolutionOut(Schema):
    overall = fields.Nested(CsRateOut, allow_none=True)
    questions = fields.Nested(CsRateOut, allow_none=True)
    ideas = fields.Nested(CsRateOut, allow_none=True)
    ideas_installed = fields.Bool(required=True)
    target_days = fields.Int(required=True)


class CsRevenueOut(Schema):
    starting_arr = fields.Float(required=True)
    churned_arr = fields.Float(required=True)
    contraction_arr = fields.Float(required=True)
    expansion_arr = fields.Float(required=True)
    grr = fields.Float(allow_none=True)
    nrr = fields.Float(allow_none=True)


class CsCompanyOut(Schema):
    self_service = fields.Nested(CsRateOut, allow_none=True)
    tickets = fields.List(fields.Nested(CsTicketPointOut), required=True)
    first_year_retention = fields.Nested(CsRetentionOut, allow_none=True)
    problem_resolution = fields.Nested(CsProblemResolutionOut, required=True)
    revenue = fields.Nested(CsRevenueOut, allow_none=True)
    logo_churn = fields.Nested(CsRateOut, allow_none=True)


class CsKpisOut(Schema):
    period = fields.Nested(CsPeriodOut, required=True)
    scorecards = fields.List(fields.Nested(CsScorecardOut), required=True)
    company = fields.Nested(CsCompanyOut, required=True)
