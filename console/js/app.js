// Entry point: sign-in, role detection and switching between the views.
import { ApiError, call, explain, signIn, signOut } from "./api.js";
import { clearResults, setUpModerate } from "./moderate.js";
import { startOperate, stopOperate } from "./operate.js";

const $ = (id) => document.getElementById(id);
let isAdmin = false;

function show(view) {
  for (const name of ["signin", "moderate", "operate"]) $(`view-${name}`).hidden = name !== view;
  for (const tab of document.querySelectorAll("#views button")) {
    if (tab.dataset.view === view) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  if (view === "operate" && isAdmin) startOperate();
  else stopOperate();
  $("main").focus();
}

/// The token is checked against the admin API: 200 means admin, 403 a valid
/// token without the admin permission (moderate only), 401 a refused token.
async function attemptSignIn(value) {
  signIn(value);
  try {
    await call("GET", "/admin/traffic");
    isAdmin = true;
  } catch (error) {
    // 404: admin, but traffic routing is not configured; the operate view says so.
    if (error instanceof ApiError && (error.status === 403 || error.status === 404)) {
      isAdmin = error.status === 404;
    } else {
      signOut();
      throw error;
    }
  }
}

function signedInAs(admin) {
  $("views").hidden = false;
  $("tab-operate").hidden = !admin;
  $("sign-out").hidden = false;
  $("who").hidden = false;
  $("who").textContent = admin ? "Signed in: moderate and operate" : "Signed in: moderate";
  show("moderate");
}

$("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const value = $("token").value.trim().replace(/^Bearer\s+/i, "");
  const message = $("signin-error");
  message.hidden = true;
  if (!value) return;
  try {
    await attemptSignIn(value);
    $("token").value = "";
    signedInAs(isAdmin);
  } catch (error) {
    message.textContent = explain(error);
    message.hidden = false;
  }
});

$("sign-out").addEventListener("click", () => {
  signOut();
  clearResults();
  isAdmin = false;
  $("views").hidden = true;
  $("who").hidden = true;
  $("sign-out").hidden = true;
  show("signin");
});

for (const tab of document.querySelectorAll("#views button")) {
  tab.addEventListener("click", () => show(tab.dataset.view));
}

setUpModerate();
