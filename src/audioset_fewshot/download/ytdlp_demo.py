"""A yt-dlp extractor for the offline demo host (``http://127.0.0.1:<port>/watch?v=<id>``).

It reads the demo server's player-response JSON and turns a non-OK
``playabilityStatus`` into the same yt-dlp errors, with the same message
texts, that yt-dlp's own YouTube extractor raises for it:

* the reason, joined with the subreason (``"Video unavailable. This video has
  been removed by the uploader"``), as ``ExtractorError(expected=True)``;
* a subreason starting "The uploader has not made this video available in
  your country" as ``GeoRestrictedError``;
* a reason containing "sign in" gets the cookies login hint appended; the
  session rate-limit text gets the rate-limit explanation appended.

The player client asked for in the extractor arguments
(``extractor_args: {youtube: {player_client: [mweb]}}``, as for YouTube) is sent
to the server as ``&c=<client>`` (the server logs which client asked) and
recorded as each format's ``_client``, as yt-dlp's YouTube extractor does.

HTTP errors of the page surface through ``InfoExtractor._download_json`` as
``ExtractorError`` caused by yt-dlp's ``HTTPError``, as for YouTube.  After
extraction everything (format selection, ``http_headers``) is yt-dlp's own
code, exactly as in production.

The class is built lazily by :func:`demo_extractor` so that importing this
module does not import yt-dlp; :func:`is_demo_url` decides whether a URL needs it.
"""

from __future__ import annotations

import functools
import re
import urllib.parse
from typing import Any

# 127.0.0.1 only: the demo host is never anything else.
DEMO_URL_RE = re.compile(r"http://127\.0\.0\.1:(?P<port>[0-9]{1,5})/watch\?v=(?P<id>[0-9A-Za-z_-]{11})")

_COOKIE_WIKI = "https://github.com/yt-dlp/yt-dlp/wiki/Extractors#exporting-youtube-cookies"
_RATE_LIMIT_WIKI = "https://github.com/yt-dlp/yt-dlp/wiki/Extractors#this-content-isnt-available-try-again-later"
_EJS_WIKI = "https://github.com/yt-dlp/yt-dlp/wiki/EJS"
_GEO_PREFIX = "The uploader has not made this video available in your country"
_EXTS = {"audio/mp4": ("m4a", "m4a_dash"), "audio/webm": ("webm", "webm_dash")}


def is_demo_url(url: str) -> bool:
    """True when ``url`` is a watch URL of the local demo server."""
    return DEMO_URL_RE.fullmatch(url) is not None


@functools.cache
def demo_extractor() -> type:
    """The extractor class (yt-dlp imported on first call)."""
    from yt_dlp.extractor.common import InfoExtractor
    from yt_dlp.utils import ExtractorError, int_or_none, remove_end, traverse_obj

    class DemoYoutubeIE(InfoExtractor):
        IE_NAME = "youtube:demo"
        IE_DESC = "audioset-fewshot offline demo server on 127.0.0.1"
        _VALID_URL = DEMO_URL_RE.pattern + "$"  # yt-dlp matches a prefix: be exact
        _NETRC_MACHINE = None

        def _real_extract(self, url: str) -> dict[str, Any]:
            video_id = self._match_id(url)
            mobj = DEMO_URL_RE.fullmatch(url)
            base = f"http://127.0.0.1:{mobj.group('port')}" if mobj else ""
            clients = self._configuration_arg("player_client", ie_key="youtube")
            client = clients[0] if clients else "web"
            query = urllib.parse.urlencode({"v": video_id, "c": client})
            pr = self._download_json(
                f"{base}/watch?{query}", video_id, note=f"Downloading {client} player API JSON", errnote="Unable to download player response"
            )
            status = traverse_obj(pr, ("playabilityStatus", "status")) or "ERROR"
            details = pr.get("videoDetails") or {}
            micro = traverse_obj(pr, ("microformat", "playerMicroformatRenderer")) or {}
            if status == "OK" and details.get("videoId") not in (None, video_id):
                # yt-dlp's own check and text: an answer for another video means a blocked address
                raise ExtractorError("All player responses are invalid. Your IP is likely being blocked by Youtube", expected=True)
            formats: list[dict[str, Any]] = []
            skipped = ""
            for f in traverse_obj(pr, ("streamingData", "adaptiveFormats")) or []:
                mime = (f.get("mimeType") or "").split(";")[0].strip()
                ext, container = _EXTS.get(mime, (None, None))
                codecs = re.search(r'codecs="([^"]+)"', f.get("mimeType") or "")
                if ext is not None and not f.get("url"):
                    skipped = "cipher" if f.get("signatureCipher") else "sabr"
                if ext is None or not f.get("url"):
                    continue
                formats.append(
                    {
                        "format_id": str(f["itag"]),
                        "url": f["url"],
                        "ext": ext,
                        # yt-dlp calls every YouTube audio format "<ext>_dash"; YouTube's DASH m4a has
                        # its sidx (indexRange), which the demo gives only for such a layout
                        "container": container if ext != "m4a" or "indexRange" in f else ext,
                        "acodec": codecs.group(1) if codecs else None,
                        "vcodec": "none",
                        "asr": int_or_none(f.get("audioSampleRate")),
                        "audio_channels": int_or_none(f.get("audioChannels")),
                        "filesize": int_or_none(f.get("contentLength")),
                        "tbr": (int_or_none(f.get("bitrate")) or 0) / 1000 or None,
                        "format_note": f.get("audioQuality"),
                        "_client": client,
                    }
                )
            if status == "OK" and skipped:
                self._report_skipped(skipped, client, video_id)
                # what is left is the storyboard: format selection says "Requested format is not available"
                formats.append({"format_id": "sb0", "url": f"{base}/storyboard?v={video_id}", "ext": "mhtml", "protocol": "mhtml",
                                "acodec": "none", "vcodec": "none", "format_note": "storyboard"})  # fmt: skip
            if status != "OK" or not formats:
                pemr = traverse_obj(pr, ("playabilityStatus", "errorScreen", "playerErrorMessageRenderer")) or {}
                reason = self._text(pemr.get("reason")) or traverse_obj(pr, ("playabilityStatus", "reason")) or ""
                subreason = self._text(pemr.get("subreason"))
                if subreason:
                    if subreason.startswith(_GEO_PREFIX):
                        self.raise_geo_restricted(subreason, micro.get("availableCountries") or None, metadata_available=True)
                    if subreason != reason:
                        reason += f". {subreason}"
                if not reason:
                    reason = "This video is unavailable"
                if "sign in" in reason.lower():
                    reason = remove_end(reason, "This helps protect our community. Learn more")
                    hint = f"{self._login_hint(method='cookies')}. Also see  {_COOKIE_WIKI}  for tips on effectively exporting YouTube cookies"
                    reason = f"{remove_end(reason.strip(), '.')}. {hint}"
                elif "This content isn't available, try again later" in reason:
                    authenticated = bool(self.get_param("cookiefile") or self.get_param("cookiesfrombrowser"))
                    who = "Your account" if authenticated else "The current session"
                    reason = (
                        f"{remove_end(reason.strip(), '.')}. {who} has been rate-limited by YouTube for up to an hour. "
                        f"It is recommended to use `-t sleep` to add a delay between video requests to avoid exceeding the rate limit. "
                        f"For more information, refer to  {_RATE_LIMIT_WIKI}"
                    )
                raise ExtractorError(reason, expected=True, video_id=video_id)
            upload = (micro.get("uploadDate") or "").replace("-", "")[:8] or None
            return {
                "id": video_id,
                "title": details.get("title") or video_id,
                "uploader": details.get("author") or micro.get("ownerChannelName"),
                "channel": details.get("author") or micro.get("ownerChannelName"),
                "channel_id": details.get("channelId") or micro.get("externalChannelId"),
                "upload_date": upload,
                "license": micro.get("license"),
                "duration": int_or_none(details.get("lengthSeconds")),
                "formats": formats,
                "webpage_url": url,
            }

        def _report_skipped(self, why: str, client: str, video_id: str) -> None:
            """yt-dlp's own warnings (texts of 2026.11) for formats it could not use."""
            if why == "cipher":  # the demo has no challenge solver: as yt-dlp without a JS runtime or yt-dlp-ejs
                self.report_warning(
                    "Signature solving failed: Some formats may be missing. Ensure you have a supported JavaScript runtime and "
                    "challenge solver script distribution installed. Review any warnings presented before this message. "
                    f"For more details, refer to  {_EJS_WIKI}",
                    video_id=video_id,
                    only_once=True,
                )
            else:
                self.report_warning(
                    f"Some {client} client https formats have been skipped as they are missing a URL. "
                    "YouTube may have enabled the SABR-only streaming experiment for the current session. "
                    "See  https://github.com/yt-dlp/yt-dlp/issues/12482  for more details",
                    video_id,
                    only_once=True,
                )

        @staticmethod
        def _text(obj: Any) -> str | None:
            if not isinstance(obj, dict):
                return None
            if isinstance(obj.get("simpleText"), str):
                return obj["simpleText"]
            runs = obj.get("runs")
            if isinstance(runs, list):
                return "".join(r.get("text", "") for r in runs if isinstance(r, dict)) or None
            return None

    return DemoYoutubeIE
