"""The public portal: a static, bilingual site generated with each release (:mod:`.site`)."""
from publish.portal.site import publish_site

__all__ = ["publish_site"]
