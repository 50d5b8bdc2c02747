import os
import sys

from django.http import HttpResponse
from django.templatetags.static import static


def home(request):
    return HttpResponse(f"django-site ok uid={os.getuid()} cwd={os.getcwd()} "
                        f"python={sys.executable} css={static('css/site.css')}\n")
