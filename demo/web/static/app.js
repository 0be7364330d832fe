// Progressive enhancement: the pages work without JavaScript (forms post, job pages refresh themselves, the server
// checks every field). Messages come from the page's data-msg-* attributes, in the page's language.

const fill = (template, values) => template.replace(/\{(\w+)\}/g, (_, name) => values[name]);

// Errors at their field: the message in the field's slot, aria-invalid on it, focus moved there.
const showError = (field, message) => {
  const slot = document.querySelector(`[data-error-for="${field.name}"]`);
  field.setAttribute("aria-invalid", "true");
  if (slot) {
    slot.textContent = message;
    slot.hidden = false;
    slot.setAttribute("role", "alert");
  }
};
const clearError = (field) => {
  const slot = document.querySelector(`[data-error-for="${field.name}"]`);
  field.removeAttribute("aria-invalid");
  if (slot) {
    slot.textContent = "";
    slot.hidden = true;
    slot.removeAttribute("role");
  }
};
// The reason a field fails the browser's own checks, in the page's language (the browser's own message follows
// the browser's language, not the page's).
const constraintMessage = (field, messages) => {
  const validity = field.validity;
  if (validity.valueMissing) return messages.msgRequired;
  if (validity.badInput) return messages.msgNumber;
  if (validity.rangeUnderflow || validity.rangeOverflow || validity.stepMismatch) {
    return fill(messages.msgRange, { min: field.min, max: field.max });
  }
  return field.validationMessage;
};
const focusField = (field) => {
  const picker = field.closest("[data-dropzone], [data-file-pick]");
  const target = field.type === "file" && picker ? picker.querySelector("[data-pick]") : field;
  target.focus();
};

// A server-rendered error: focus its field (autofocus may not fire after a POST).
const invalid = document.querySelector("[aria-invalid=true]");
if (invalid) focusField(invalid);

for (const form of document.querySelectorAll("form[data-validate]")) {
  form.addEventListener("submit", (event) => {
    let first = null;
    for (const field of form.querySelectorAll("input, textarea, select")) {
      if (!field.name || field.type === "hidden") continue;
      const custom = field.dataset.customError;
      if (custom || !field.checkValidity()) {
        showError(field, custom || constraintMessage(field, form.dataset));
        first = first || field;
      } else if (!field.dataset.keepError) {
        clearError(field);
      }
    }
    if (first) {
      event.preventDefault();
      focusField(first);
    }
  });
  // Ctrl+Enter (⌘+Enter on a Mac) sends the form from any of its fields.
  form.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("input", (event) => {
    if (event.target.getAttribute("aria-invalid") === "true" && event.target.checkValidity()) clearError(event.target);
  });
}

// Prompts: a live "n/300" counter, and a visible message when a paste (or anything) runs past the limit and is cut.
for (const field of document.querySelectorAll("textarea[data-max]")) {
  const max = Number(field.dataset.max);
  const counter = document.querySelector(`[data-counter-for="${field.id}"]`);
  const cut = document.querySelector(`[data-cut-for="${field.id}"]`);
  const template = field.dataset.msgCut;
  const update = () => {
    const given = field.value.length;
    if (given > max) {
      field.value = field.value.slice(0, max);
      cut.textContent = fill(template, { given, max });
      cut.hidden = false;
    }
    counter.textContent = `${field.value.length}/${max}`;
  };
  field.addEventListener("input", update);
  update();
}

// Example prompts: one click puts the example in the prompt field.
for (const chip of document.querySelectorAll("[data-example]")) {
  chip.addEventListener("click", (event) => {
    const prompt = document.getElementById("prompt");
    if (!prompt) return;
    event.preventDefault();
    prompt.value = chip.dataset.example;
    prompt.dispatchEvent(new Event("input", { bubbles: true }));
    prompt.focus();
  });
}

// A job page: poll the JSON API for progress, estimate the time left from the measured step rate, and reload for
// the server-rendered result when the job ends.
const progress = document.querySelector("[data-job]");
if (progress) {
  const bar = progress.querySelector("[data-progress]");
  const stepText = progress.querySelector("[data-step-text]");
  const queue = progress.querySelector("[data-queue]");
  const eta = progress.querySelector("[data-eta]");
  const messages = progress.dataset;
  let first = null; // {step, time} when the job was first seen running
  const poll = async () => {
    try {
      const response = await fetch(progress.dataset.job, { headers: { Accept: "application/json" } });
      const job = await response.json();
      if (!response.ok) throw new Error(job.error);
      bar.max = job.total_steps;
      bar.value = job.step;
      stepText.textContent = fill(messages.msgStep, { step: job.step, total: job.total_steps });
      queue.textContent = job.queue_position ? `· ${fill(messages.msgQueue, { position: job.queue_position })}` : "";
      const now = performance.now();
      if (job.status === "running" && first === null) first = { step: job.step, time: now };
      if (first && job.step > first.step) {
        const rate = (job.step - first.step) / ((now - first.time) / 1000);
        const seconds = Math.max(1, Math.round((job.total_steps - job.step) / rate));
        eta.textContent = `· ${fill(messages.msgEta, { seconds })}`;
        eta.dataset.seconds = seconds;
      }
      if (job.status === "done" || job.status === "failed") {
        window.location.reload();
        return;
      }
    } catch (error) {
      stepText.textContent = `${messages.msgRetry} (${error.message})`;
    }
    setTimeout(poll, 400);
  };
  poll();
}

// Image→image: a drop zone with a real button; each file is checked here (type, size, that it decodes) before it
// is sent, and a bad one is refused without losing the image chosen before it.
for (const zone of document.querySelectorAll("[data-dropzone]")) {
  const input = zone.querySelector("input[type=file]");
  const box = zone.querySelector("[data-preview-box]");
  const preview = box.querySelector("img");
  const caption = box.querySelector("[data-file-name]");
  const source = zone.querySelector("[data-source]");
  const types = zone.dataset.types.split(",");
  const maxBytes = Number(zone.dataset.maxBytes);
  let kept = new DataTransfer(); // the last good file

  const decodes = (url) => new Promise((resolve) => {
    const probe = new Image();
    probe.onload = () => resolve(probe.naturalWidth > 0);
    probe.onerror = () => resolve(false);
    probe.src = url;
  });
  const refuse = (message) => {
    input.files = kept.files;
    const hadOne = kept.files.length > 0 || Boolean(source);
    showError(input, hadOne ? `${message} ${zone.dataset.msgKept}` : message);
    input.dataset.keepError = "1";
    if (!hadOne) input.dataset.customError = message;
  };
  const accept = async (file) => {
    if (!types.includes(file.type)) return refuse(zone.dataset.msgType);
    if (file.size > maxBytes) return refuse(zone.dataset.msgSize);
    const url = URL.createObjectURL(file);
    if (!(await decodes(url))) {
      URL.revokeObjectURL(url);
      return refuse(zone.dataset.msgUnreadable);
    }
    kept = new DataTransfer();
    kept.items.add(file);
    input.files = kept.files;
    if (source) source.remove();
    preview.src = url;
    caption.textContent = file.name;
    box.hidden = false;
    delete input.dataset.customError;
    delete input.dataset.keepError;
    clearError(input);
  };
  if (!source) input.dataset.customError = zone.dataset.msgMissing;
  zone.querySelector("[data-pick]").addEventListener("click", () => input.click());
  input.addEventListener("change", () => {
    if (input.files.length) accept(input.files[0]);
    else input.files = kept.files;
  });
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    if (event.dataTransfer.files.length) accept(event.dataTransfer.files[0]);
  });
}

// A file field shown as a button and the chosen file's name, in the page's language.
for (const picker of document.querySelectorAll("[data-file-pick]")) {
  const input = picker.querySelector("input[type=file]");
  const name = picker.querySelector("[data-file-name]");
  picker.querySelector("[data-pick]").addEventListener("click", () => input.click());
  input.addEventListener("change", () => {
    if (input.files.length) {
      name.textContent = input.files[0].name;
      clearError(input);
    }
  });
}
