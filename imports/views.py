"""The report download: ``imports/<pk>/report/``, for the import's creator or a superuser (others get a 404, so
that ids of others' imports stay unconfirmed)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest
from django.shortcuts import get_object_or_404
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .models import UserImport


@require_GET
@never_cache
@login_required
def report(request: HttpRequest, pk: int) -> FileResponse:
    """The CSV of the import's rejected rows, as an attachment."""
    visible = UserImport.objects.all()
    if not request.user.is_superuser:
        visible = visible.filter(created_by_id=request.user.pk)
    user_import = get_object_or_404(visible, pk=pk)
    if not user_import.report:
        raise Http404("This import has no report: no row was rejected, or it has not finished.")
    try:
        content = user_import.report.open("rb")
    except FileNotFoundError:
        raise Http404("The report's file is gone from storage.") from None
    return FileResponse(content, as_attachment=True, filename=f"user-import-{pk}-rejected.csv",
                        content_type="text/csv; charset=utf-8")
