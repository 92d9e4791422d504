"""``GET /join``: a page that streams the local microphone to the ingest over WebRTC.

``/join?session=S&participant=P&role=therapist|client|other&clinic=C&mode=levels|audio
&token=T`` (``clinic`` and ``mode`` optional; ``processing=on`` keeps the browser's echo
cancellation, noise suppression and gain control, off by default so levels and the VAD see
the microphone as it is; docs/vad.md, "Through a real browser", measures what it costs the
VAD). A platform embeds it in an iframe (``allow="microphone"``) or opens
it in a small window. The script, inline and without any CDN:

1. adds a ``sendrecv`` audio transceiver and creates the offer *before* opening the microphone
   (a capture device starts playing at ``getUserMedia``: opening it first loses the start);
   ``sendrecv`` lets the ingest send silence back, which gives it the RTT (RTCP);
2. waits for ICE gathering to complete (aiortc takes no trickle candidates), posts the offer
   with the token as bearer, applies the answer;
3. opens the microphone and ``replaceTrack``\\ s it in; shows the connection state in the page
   (and in ``document.body.dataset.state``, for tests and embedding pages; the epoch
   milliseconds at which the microphone opened are in ``document.body.dataset.microphoneMs``);
4. on leaving (button or page hide) sends ``DELETE …/participants/P``.

The page reads its parameters itself: nothing from the query string is written into the
HTML by the server.
"""

from __future__ import annotations

from aiohttp import web

from services.auth import public

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Rapport</title>
<style>body{font:15px system-ui,sans-serif;margin:1em;color:#222}
#state{font-weight:600}button{margin-top:.5em}</style></head>
<body data-state="starting">
<p>Rapport measures who speaks when (voice activity only; no audio is kept).</p>
<p>Status: <span id="state">starting</span></p>
<button id="leave" disabled>Leave</button>
<script>
"use strict";
(async () => {
  const q = new URLSearchParams(location.search);
  const session = q.get("session"), participant = q.get("participant");
  const token = q.get("token"), role = q.get("role") || "client";
  const label = document.getElementById("state"), button = document.getElementById("leave");
  const show = (text) => { label.textContent = text; document.body.dataset.state = text; };
  if (!session || !participant || !token) {
    show("error: session, participant and token are required"); return;
  }
  const base = "/v1/sessions/" + encodeURIComponent(session) + "/participants/" +
    encodeURIComponent(participant);
  const headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"};
  const pc = new RTCPeerConnection({iceServers: []});
  const transceiver = pc.addTransceiver("audio", {direction: "sendrecv"});
  let stream = null, left = false;
  const leave = () => {
    if (left) return;
    left = true;
    fetch(base, {method: "DELETE", headers, keepalive: true}).catch(() => {});
    pc.close();
    if (stream) stream.getTracks().forEach((t) => t.stop());
    show("left"); button.disabled = true;
  };
  pc.addEventListener("connectionstatechange", () => {
    if (!left) show(pc.connectionState === "connected" ? "streaming" : pc.connectionState);
  });
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
  });
  show("connecting");
  const body = {sdp: pc.localDescription.sdp, type: "offer", role: role};
  if (q.get("clinic")) body.clinic = q.get("clinic");
  if (q.get("mode")) body.mode = q.get("mode");
  const reply = await fetch(base + "/offer", {method: "POST", headers, body: JSON.stringify(body)});
  const answer = await reply.json().catch(() => ({error: "HTTP " + reply.status}));
  if (!reply.ok) { show("error: " + answer.error); pc.close(); return; }
  await pc.setRemoteDescription({type: answer.type, sdp: answer.sdp});
  const processing = q.get("processing") === "on";
  stream = await navigator.mediaDevices.getUserMedia({audio: {
    echoCancellation: processing, noiseSuppression: processing, autoGainControl: processing}});
  document.body.dataset.microphoneMs = String(Date.now());  // capture starts about here
  await transceiver.sender.replaceTrack(stream.getAudioTracks()[0]);
  document.body.dataset.mode = answer.mode;
  if (pc.connectionState === "connected") show("streaming");
  button.disabled = false;
  button.addEventListener("click", leave);
  addEventListener("pagehide", leave);
})().catch((error) => {
  document.getElementById("state").textContent = "error: " + error;
  document.body.dataset.state = "error: " + error;
});
</script>
</body></html>
"""

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; "
                               "style-src 'unsafe-inline'; connect-src 'self'",
    "Cache-Control": "no-store",  # the URL carries a token
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "microphone=(self)",
}


@public
async def join_page(request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html", headers=HEADERS)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/join", join_page)
