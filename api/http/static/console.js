// The console works without this script. It adds the New Integration dialog
// as a modal, the copy buttons, and a hint that edits must be saved before
// the integration is switched on or off.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Links that open a <dialog>; without script they lead to a page that
  // renders the same dialog open, as a plain form.
  for (const opener of document.querySelectorAll("a[data-dialog]")) {
    const dialog = document.getElementById(opener.dataset.dialog);
    if (!dialog || typeof dialog.showModal !== "function") continue;
    opener.addEventListener("click", (event) => {
      event.preventDefault();
      dialog.showModal();
    });
  }
  for (const dialog of document.querySelectorAll("dialog[open][data-modal]")) {
    if (typeof dialog.showModal !== "function") continue;
    dialog.close();
    dialog.showModal();
  }
  for (const closer of document.querySelectorAll("[data-dialog-close]")) {
    closer.addEventListener("click", (event) => {
      const dialog = closer.closest("dialog");
      if (!dialog) return;
      event.preventDefault();
      dialog.close();
    });
  }

  // Copy buttons: the URL stays in a readonly input anyone can select.
  const copyStatus = document.getElementById("copy-status");
  for (const button of document.querySelectorAll("button[data-copy]")) {
    const input = document.getElementById(button.dataset.copy);
    if (!input || !navigator.clipboard) continue;
    button.hidden = false;
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(input.value);
        button.textContent = "Copied";
        if (copyStatus) copyStatus.textContent = "Copied to the clipboard.";
      } catch {
        input.select();
        button.textContent = "Press Ctrl+C";
      }
    });
  }

  // Activate and Deactivate act on what was saved, not on unsaved edits.
  const configuration = document.querySelector("form[data-tracks-changes]");
  if (configuration) {
    const note = document.getElementById("unsaved-note");
    const changed = () => {
      for (const button of document.querySelectorAll("button[data-needs-saved]")) {
        button.disabled = true;
        button.setAttribute("aria-describedby", "unsaved-note");
      }
      if (note) note.hidden = false;
    };
    configuration.addEventListener("input", changed, { once: true });
    configuration.addEventListener("change", changed, { once: true });
  }
});
