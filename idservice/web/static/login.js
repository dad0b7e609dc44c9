// Auditor login through the local signing agent (no inline script: the page's CSP forbids it).
// 1. POST /v1/auth/challenge -> nonce; 2. the agent signs H(origin) || H(nonce) with the USB
// token; 3. POST /v1/auth/token -> access token; 4. POST /ui/session turns it into an
// HttpOnly SameSite=Strict cookie. The token is kept in no storage by this script.
"use strict";
(function () {
  const root = document.getElementById("login");
  const button = document.getElementById("login-button");
  const statusLine = document.getElementById("login-status");
  const agent = root.dataset.agent;
  const origin = root.dataset.origin;

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

  async function login() {
    button.disabled = true;
    try {
      say("Asking the service for a challenge…");
      const challenge = await fetch("/v1/auth/challenge", { method: "POST", cache: "no-store" });
      if (!challenge.ok) throw new Error("challenge: " + (await problem(challenge)));
      const nonce = (await challenge.json()).nonce;

      say("Signing with your token (signing agent at " + agent + ")…");
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
        throw new Error("the signing agent does not answer at " + agent + " (is it running?)");
      }
      if (!signed.ok) throw new Error("signing agent: " + (await problem(signed)));
      const authToken = await signed.json();

      say("Checking the signature…");
      const token = await postJson("/v1/auth/token", { nonce: nonce, auth_token: authToken });
      if (!token.ok) throw new Error("login refused: " + (await problem(token)));
      const session = await postJson("/ui/session", { access_token: (await token.json()).access_token });
      if (!session.ok) throw new Error("session: " + (await problem(session)));
      say("Logged in.");
      window.location.assign("/ui/events");
    } catch (e) {
      say(e.message, true);
      button.disabled = false;
    }
  }

  button.addEventListener("click", login);
})();
