# Copied from django-rq (https://github.com/rq/django-rq), tests/views.py at commit 9915b336ae2ec6b825c84670b24bbc9f38fb5ff8
# (branch master, 2026-05-15; the mirror has no v4.2.0 tag, this is the commit nearest the installed 4.2.0).
# django-rq is MIT-licensed, Copyright (c) 2012 Selwin Ong: see tests_django_rq/LICENSE.
# Adapted for this project: only the package name `tests` -> `tests_django_rq` in imports and dotted paths.
from django.shortcuts import render

from django_rq import get_queue


def say_hello():
    return 'Hello'


def success(request):
    queue = get_queue()
    queue.enqueue(say_hello)
    return render(request, 'django_rq/test.html', {})


def error(request):
    queue = get_queue()
    queue.enqueue(say_hello)
    raise ValueError
