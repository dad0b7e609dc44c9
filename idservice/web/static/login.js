// Login through the local signing agent (no inline script: the page's CSP forbids it).
// 1. POST /v1/auth/challenge -> nonce; 2. the agent signs H(origin) || H(nonce) with the USB
// token; 3. POST /v1/auth/token -> access token; 4. POST /ui/session turns it into an
// HttpOnly SameSite=Strict cookie; 5. go to `next` (a /ui/ address checked by the server).
// The token is kept in no storage by this script. Every text shown comes from the page's
// data-msg-* attributes, which the server translated.
"use strict";
(function () {
  const root = document.getElementById("login");
  const button = document.getElementById("login-button");
  const statusLine = document.getElementById("login-status");
  const agent = root.dataset.agent;
  const origin = root.dataset.origin;
  const next = root.dataset.next || "/ui/";
  const msg = root.dataset;

  function say(text, isError) {
    statusLine.textContent = text;
    statusLine.className = isError ? "error" : "";
  }

  async function problem(response) {
    try {
      const body = await response.json();
      return body.detail || body.error || body.code || response.statusText;
    } catch (e) {
      return response.statusText || String(response.status);
    }
  }

  async function postJson(url, body) {
    return fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  }

  // The CORS request failed: is the agent not running, or running for another origin? A
  // no-cors request reaches a running agent (its answer is opaque, but it arrives) and fails
  // only when nothing listens.
  async function agentRunning() {
    try {
      await fetch(agent + "/sign", { method: "POST", mode: "no-cors", cache: "no-store",
                                     credentials: "omit", body: "{}" });
      return true;
    } catch (e) {
      return false;
    }
  }

  async function login() {
    button.disabled = true;
    try {
      say(msg.msgChallenge);
      let challenge;
      try {
        challenge = await fetch("/v1/auth/challenge", { method: "POST", cache: "no-store" });
      } catch (e) {
        throw new Error(msg.msgServiceDown);
      }
      if (!challenge.ok) throw new Error(msg.msgLoginRefused + " " + (await problem(challenge)));
      const nonce = (await challenge.json()).nonce;

      say(msg.msgSigning);
      let signed;
      try {
        signed = await fetch(agent + "/sign", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ nonce: nonce, origin: origin }),
          credentials: "omit",
          cache: "no-store",
        });
      } catch (e) {
        throw new Error((await agentRunning()) ? msg.msgAgentOrigin : msg.msgAgentDown);
      }
      if (!signed.ok) throw new Error(msg.msgAgentRefused + " " + (await problem(signed)));
      const authToken = await signed.json();

      say(msg.msgChecking);
      const token = await postJson("/v1/auth/token", { nonce: nonce, auth_token: authToken });
      if (!token.ok) throw new Error(msg.msgLoginRefused + " " + (await problem(token)));
      const session = await postJson("/ui/session", { access_token: (await token.json()).access_token });
      if (session.status === 403) throw new Error(msg.msgNoPage);
      if (!session.ok) throw new Error(msg.msgLoginRefused + " " + (await problem(session)));
      say(msg.msgDone);
      window.location.assign(next);
    } catch (e) {
      say(e.message, true);
      button.disabled = false;
      button.focus();
    }
  }

  button.addEventListener("click", login);
})();
