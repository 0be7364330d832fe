// Progressive enhancement: the pages work without JavaScript (forms post, job pages refresh themselves).

// A job page: poll the JSON API for progress; reload for the server-rendered result when the job ends.
const progress = document.querySelector("[data-job]");
if (progress) {
  const bar = progress.querySelector("[data-progress]");
  const stepText = progress.querySelector("[data-step-text]");
  const queue = progress.querySelector("[data-queue]");
  const poll = async () => {
    try {
      const response = await fetch(progress.dataset.job, { headers: { Accept: "application/json" } });
      const job = await response.json();
      if (!response.ok) throw new Error(job.error);
      bar.max = job.total_steps;
      bar.value = job.step;
      stepText.textContent = `${job.step}/${job.total_steps} 단계`;
      queue.textContent = job.queue_position ? `· 대기 순서 ${job.queue_position}번` : "";
      if (job.status === "done" || job.status === "failed") {
        window.location.reload();
        return;
      }
    } catch (error) {
      stepText.textContent = `진행 상황을 읽지 못했습니다 (${error.message}); 다시 시도합니다`;
    }
    setTimeout(poll, 400);
  };
  poll();
}

// Image→image: drag and drop or pick a file, and preview it.
for (const zone of document.querySelectorAll("[data-dropzone]")) {
  const input = zone.querySelector("input[type=file]");
  const preview = zone.querySelector(".preview");
  const show = () => {
    const file = input.files[0];
    if (!file) return;
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
  };
  input.addEventListener("change", show);
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    if (event.dataTransfer.files.length) {
      input.files = event.dataTransfer.files;
      show();
    }
  });
}
