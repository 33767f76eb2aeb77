"""The admin's upload form: the file only, checked before anything is stored or queued."""

from __future__ import annotations

import posixpath

from django import forms
from django.core.files.uploadedfile import UploadedFile
from django.template.defaultfilters import filesizeformat

from . import conf
from .csvfile import InvalidFile, read_header
from .models import UserImport


class UploadForm(forms.ModelForm):
    """Refuse a file that is not named ``.csv``, is over ``IMPORTS_MAX_BYTES``, or whose first line is not the
    header the import needs (only that line is read here; the job checks the rows)."""

    class Meta:
        model = UserImport
        fields = ("file",)
        help_texts = {"file": "A UTF-8 CSV file whose first line is the header username,email,first_name,last_name "
                              "(any order). Users are matched by email: new ones are created, existing ones updated."}

    def clean_file(self) -> UploadedFile:
        upload = self.cleaned_data["file"]
        extension = posixpath.splitext(upload.name or "")[1]
        if extension.lower() != ".csv":
            raise forms.ValidationError(f"Upload a .csv file: “{upload.name}” is not one.", code="extension")
        limit = conf.max_bytes()
        if upload.size > limit:
            raise forms.ValidationError(
                f"The file is {filesizeformat(upload.size)}, over the {filesizeformat(limit)} limit "
                "(IMPORTS_MAX_BYTES): split it into smaller files.", code="size")
        upload.seek(0)
        try:
            read_header(upload)
        except InvalidFile as e:
            raise forms.ValidationError(str(e), code="header") from None
        finally:
            upload.seek(0)
        return upload
