"""The download of an export's file: for its creator and superusers only (anyone else gets 404, as for a file that
does not exist), streamed from the storage as an attachment."""

from __future__ import annotations

import os

from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import FileResponse, Http404, HttpRequest
from django.views.decorators.http import require_safe

from .models import Export, Status


@require_safe
@login_required
def download(request: HttpRequest, pk: int) -> FileResponse:
    """Stream export ``pk``'s CSV file.

    Raises:
        Http404: no such export, not the user's own (unless superuser), not done, or its file is gone.
    """
    mine = Q() if request.user.is_superuser else Q(created_by=request.user)
    export = Export.objects.filter(mine, pk=pk, status=Status.DONE).exclude(file="").only("file").first()
    if export is None:
        raise Http404("No such export.")
    try:
        handle = export.file.open("rb")
    except FileNotFoundError as e:
        raise Http404("The export's file is gone.") from e
    return FileResponse(handle, as_attachment=True, filename=os.path.basename(export.file.name),
                        content_type="text/csv; charset=utf-8")
