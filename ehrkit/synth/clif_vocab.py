"""Vocabulary and schemas for the synthetic CLIF 2.1 tables: column types as in the MIMIC-IV
demo, mCIDE category values, and the parameters of each simulated measurement."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pyarrow as pa

TABLES = ("patient", "hospitalization", "adt", "vitals", "labs", "medication_admin_continuous",
          "respiratory_support", "patient_assessments", "position")
BATCH_HOSPITALIZATIONS = 500

TYPES = {"s": pa.string(), "t": pa.timestamp("us", tz="UTC"), "d": pa.timestamp("us"),
          "f": pa.float64(), "f32": pa.float32(), "i": pa.int64(), "b": pa.bool_()}


def _schema(spec: str) -> pa.Schema:
    return pa.schema([(name, TYPES[kind]) for name, kind in
                      (item.split(":") for item in spec.split())])


_VENT = ("fio2_set lpm_set tidal_volume_set resp_rate_set pressure_control_set "
         "pressure_support_set flow_rate_set peak_inspiratory_pressure_set inspiratory_time_set "
         "peep_set tidal_volume_obs resp_rate_obs plateau_pressure_obs "
         "peak_inspiratory_pressure_obs peep_obs minute_vent_obs mean_airway_pressure_obs")
SCHEMAS = {name: _schema(spec) for name, spec in {
    "patient": "patient_id:s race_name:s race_category:s ethnicity_name:s ethnicity_category:s "
               "sex_name:s sex_category:s birth_date:d death_dttm:t language_name:s "
               "language_category:s",
    "hospitalization": "patient_id:s hospitalization_id:s hospitalization_joined_id:s "
                       "admission_dttm:t discharge_dttm:t age_at_admission:i "
                       "admission_type_name:s admission_type_category:s discharge_name:s "
                       "discharge_category:s zipcode_nine_digit:s zipcode_five_digit:s "
                       "census_block_code:s census_block_group_code:s census_tract:s "
                       "state_code:s county_code:s",
    "adt": "patient_id:s hospitalization_id:s hospital_id:s in_dttm:t out_dttm:t location_name:s "
           "location_category:s location_type:s hospital_type:s",
    "vitals": "hospitalization_id:s recorded_dttm:t vital_name:s vital_category:s vital_value:f "
              "meas_site_name:s",
    "labs": "hospitalization_id:s lab_order_dttm:t lab_collect_dttm:t lab_result_dttm:t "
            "lab_order_name:s lab_order_category:s lab_name:s lab_category:s lab_value:s "
            "lab_value_numeric:f reference_unit:s lab_specimen_name:s lab_specimen_category:s "
            "lab_loinc_code:s",
    "medication_admin_continuous": "hospitalization_id:s med_order_id:s med_name:s med_category:s "
                                   "admin_dttm:t mar_action_name:s mar_action_category:s "
                                   "med_dose:f32 med_dose_unit:s med_group:s med_route_name:s "
                                   "med_route_category:s",
    "respiratory_support": "hospitalization_id:s recorded_dttm:t device_name:s device_category:s "
                           "vent_brand_name:s mode_name:s mode_category:s tracheostomy:b "
                           + " ".join(f"{c}:f" for c in _VENT.split()),
    "patient_assessments": "hospitalization_id:s recorded_dttm:t assessment_name:s "
                           "assessment_category:s assessment_group:s numerical_value:f "
                           "categorical_value:s text_value:s",
    "position": "hospitalization_id:s recorded_dttm:t position_name:s position_category:s",
}.items()}

# (category, source name) pairs, spelled as in the MIMIC-IV demo
RACES = [("White", "WHITE"), ("Black or African American", "BLACK/AFRICAN AMERICAN"),
         ("Asian", "ASIAN"), ("American Indian or Alaska Native", "AMERICAN INDIAN/ALASKA NATIVE"),
         ("Native Hawaiian or Other Pacific Islander", "NATIVE HAWAIIAN OR OTHER PACIFIC ISLANDER"),
         ("Other", "OTHER"), ("Unknown", "UNKNOWN")]
LANGUAGES = [("English", "English"), ("Spanish", "Spanish"), ("Portuguese", "Portuguese"),
             ("Other and unspecified languages", "Other")]
ADMISSION_TYPES = [("ed", "EW EMER."), ("ed", "URGENT"), ("ed", "EU OBSERVATION"),
                   ("elective", "ELECTIVE"), ("elective", "SURGICAL SAME DAY ADMISSION"),
                   ("direct", "DIRECT EMER.")]
DISCHARGES = [("Home", "HOME"), ("Skilled Nursing Facility (SNF)", "SKILLED NURSING FACILITY"),
              ("Acute Inpatient Rehab Facility", "REHAB"),
              ("Long Term Care Hospital (LTACH)", "CHRONIC/LONG TERM ACUTE CARE"),
              ("Hospice", "HOSPICE"), ("Against Medical Advice (AMA)", "AGAINST ADVICE"),
              ("Home", "HOME HEALTH CARE")]
# (location_name, location_category, location_type); codes index this list
LOCATIONS = [("Emergency Department", "ed", None), ("PACU", "procedural", None),
             ("Medicine", "ward", None), ("Med/Surg", "ward", None), ("Neurology", "ward", None),
             ("Medicine/Cardiology", "ward", None), ("Hematology/Oncology", "ward", None),
             ("Transplant", "ward", None), ("Medicine/Cardiology Intermediate", "stepdown", None),
             ("Medical Intensive Care Unit (MICU)", "icu", "medical_icu"),
             ("Surgical Intensive Care Unit (SICU)", "icu", "surgical_icu"),
             ("Coronary Care Unit (CCU)", "icu", "cardiac_icu"),
             ("Medical/Surgical Intensive Care Unit (MICU/SICU)", "icu", "general_icu"),
             ("Neuro Surgical Intensive Care Unit (Neuro SICU)", "icu", "neurosurgical_icu")]
LOCATION_NAMES = [name for name, _, _ in LOCATIONS]
LOCATION_CATEGORIES = [category for _, category, _ in LOCATIONS]
WARDS = [name for name, category, _ in LOCATIONS if category == "ward"]
ICUS = [name for name, category, _ in LOCATIONS if category == "icu"]
STEPDOWN = "Medicine/Cardiology Intermediate"

# vitals: hr, sbp, dbp, spo2, rr, temp as (mean, severity effect, sd, low, high)
VITAL_MODEL = np.array([(85, 11, 9, 30, 220), (118, -12, 13, 50, 240), (62, -7, 8, 20, 140),
                        (97.3, -1.5, 1.4, 60, 100), (18, 3.3, 3, 5, 50),
                        (36.9, 0.35, 0.35, 33, 42)], dtype=float)
VITAL_CATEGORIES = ["heart_rate", "sbp", "dbp", "map", "spo2", "respiratory_rate", "temp_c",
                    "height_cm", "weight_kg"]
VITAL_NAMES = ["Heart Rate", "Non Invasive Blood Pressure systolic",
               "Non Invasive Blood Pressure diastolic", "Non Invasive Blood Pressure mean",
               "O2 saturation pulseoxymetry", "Respiratory Rate", "Temperature Celsius",
               "Height (cm)", "Daily Weight", "Arterial Blood Pressure systolic",
               "Arterial Blood Pressure diastolic", "Arterial Blood Pressure mean"]

# category, name, order category, unit, then the model: mean, severity effect, sd, low, high,
# decimals, log-normal (effect and sd on the log scale), availability (0 every draw, 1 ICU
# draws and the first, 2 sometimes)
LABS = [
    ("sodium", "Sodium", "bmp", "mmol/L", 139, -1.2, 3.5, 110, 170, 0, 0, 0),
    ("potassium", "Potassium", "bmp", "mmol/L", 4.1, 0.15, 0.45, 2, 8, 1, 0, 0),
    ("chloride", "Chloride", "bmp", "mmol/L", 102, 0, 4, 75, 130, 0, 0, 0),
    ("bicarbonate", "Bicarbonate", "bmp", "mmol/L", 25, -2.5, 2.8, 5, 45, 0, 0, 0),
    ("bun", "Urea Nitrogen", "bmp", "mg/dL", 17, 0.3, 0.45, 2, 200, 0, 1, 0),
    ("creatinine", "Creatinine", "bmp", "mg/dL", 0.95, 0.28, 0.35, 0.2, 15, 1, 1, 0),
    ("glucose_serum", "Glucose", "bmp", "mg/dL", 122, 0.08, 0.25, 30, 900, 0, 1, 0),
    ("calcium_total", "Calcium, Total", "bmp", "mg/dL", 8.7, -0.25, 0.55, 5, 14, 1, 0, 0),
    ("magnesium", "Magnesium", "misc", "mg/dL", 2.0, 0, 0.25, 0.8, 4.5, 1, 0, 0),
    ("wbc", "White Blood Cells", "cbc", "10*3/uL", 9.0, 0.25, 0.35, 0.1, 80, 1, 1, 0),
    ("hemoglobin", "Hemoglobin", "cbc", "g/dL", 11.2, -0.7, 1.6, 4, 19, 1, 0, 0),
    ("platelet_count", "Platelet Count", "cbc", "10*3/uL", 215, -0.18, 0.4, 5, 1000, 0, 1, 0),
    ("lactate", "Lactate", "misc", "mmol/L", 1.3, 0.42, 0.3, 0.3, 25, 1, 1, 1),
    ("ph_arterial", "pH", "blood_gas", None, 7.39, -0.04, 0.035, 6.8, 7.7, 2, 0, 1),
    ("pco2_arterial", "pCO2", "blood_gas", "mmHg", 40, 1.5, 6, 15, 120, 0, 0, 1),
    ("po2_arterial", "pO2", "blood_gas", "mmHg", 100, -10, 25, 30, 500, 0, 0, 1),
    ("bilirubin_total", "Bilirubin, Total", "lft", "mg/dL", 0.7, 0.3, 0.6, 0.1, 40, 1, 1, 2),
    ("ast", "Asparate Aminotransferase (AST)", "lft", "U/L", 32, 0.35, 0.6, 5, 5000, 0, 1, 2),
    ("alt", "Alanine Aminotransferase (ALT)", "lft", "U/L", 28, 0.3, 0.6, 3, 5000, 0, 1, 2),
    ("albumin", "Albumin", "lft", "g/dL", 3.4, -0.3, 0.45, 1, 5.5, 1, 0, 2),
    ("inr", "INR(PT)", "coags", None, 1.2, 0.1, 0.2, 0.8, 10, 1, 1, 2),
]
LAB_MODEL = np.array([lab[4:] for lab in LABS], dtype=float)

_DRIP = "01-Drips; 02-Fluids (Crystalloids); Main order parameter; Continuous Med; Medications"
# category, name, group, dose unit, route name
MEDS = [("norepinephrine", "Norepinephrine", "vasoactives", "mcg/kg/min", _DRIP),
        ("vasopressin", "Vasopressin", "vasoactives", "units/hour", _DRIP),
        ("propofol", "Propofol", "sedation", "mcg/kg/min", _DRIP),
        ("fentanyl", "Fentanyl (Concentrate)", "sedation", "mcg/hour", _DRIP),
        ("dexmedetomidine", "Dexmedetomidine (Precedex)", "sedation", "mcg/kg/hour", _DRIP),
        ("sodium chloride", "NaCl 0.9%", "fluids_electrolytes", "mL/hour",
         ("02-Fluids (Crystalloids); Additive (Crystalloid); Main order parameter; Continuous IV; "
          "Fluids/Intake")),
        ("insulin", "Insulin - Regular", "endocrine", "units/hour", _DRIP),
        ("heparin", "Heparin Sodium", "anticoagulation", "units/hour", _DRIP)]
MED_INDEX = {med[0]: i for i, med in enumerate(MEDS)}

DEVICES = [("IMV", "Endotracheal tube"), ("NIPPV", "Bipap mask"), ("CPAP", "CPAP mask"),
           ("High Flow NC", "High flow nasal cannula"), ("Face Mask", "Face tent"),
           ("Trach Collar", "Trach mask"), ("Nasal Cannula", "Nasal cannula"),
           ("Room Air", "Room air"), ("Other", "Other")]
MODES = [("Assist Control-Volume Control", "CMV/ASSIST/AutoFlow"), ("Pressure Control", "P-CMV"),
         ("Pressure-Regulated Volume Control", "APV (cmv)"), ("SIMV", "SIMV"),
         ("Pressure Support/CPAP", "CPAP/PSV"), ("Volume Support", "VS")]
# ventilator settings and observations while on IMV: (mean, severity effect, sd, low, high)
VENT_MODEL = {"peep_set": (6, 1.5, 1.5, 5, 20), "tidal_volume_set": (450, 0, 40, 300, 600),
              "resp_rate_set": (16, 2, 2, 8, 35), "tidal_volume_obs": (460, 0, 60, 150, 900),
              "resp_rate_obs": (18, 2.5, 3, 6, 45),
              "peak_inspiratory_pressure_obs": (20, 3, 4, 8, 50),
              "plateau_pressure_obs": (17, 2.5, 3, 8, 40), "peep_obs": (6, 1.5, 1.5, 4, 20),
              "minute_vent_obs": (8.5, 1, 1.5, 2, 25),
              "mean_airway_pressure_obs": (10, 2, 2, 4, 30)}

# category, name, group
ASSESSMENTS = [("gcs_eye", "gcs_eyes", "Neurological"), ("gcs_motor", "gcs_motor", "Neurological"),
               ("gcs_verbal", "gcs_verbal", "Neurological"), ("gcs_total", "gcs", "Neurological"),
               ("RASS", "Richmond-RAS Scale", "Sedation/Agitation"),
               ("cam_total", "CAM-ICU", "Delirium"), ("braden_total", "Braden Score", "Nursing Risk"),
               ("sbt_delivery_pass_fail", "SBT Successfully Completed", "SBT Delivery")]
RASS_TEXT = ["-5 Unarousable, no response to voice or physical stimulation",
             ("-4 Deep sedation, no response to voice, but movement or eye opening to physical "
              "stimulation"), "-3 Moderate sedation, movement or eye opening; No eye contact",
             "-2 Light sedation, briefly awakens to voice (eye opening/contact) < 10 sec",
             "-1 Awakens to voice (eye opening/contact) > 10 sec", " 0  Alert and calm",
             "+1 Anxious, apprehensive, but not aggressive",
             "+2 Frequent nonpurposeful movement, fights ventilator",
             "+3 Pulls or removes tube(s) or catheter(s); aggressive",
             "+4 Combative, violent, danger to staff"]
POSITIONS = ["Right Side", "Left Side", "Supine", "Sitting", "Prone"]

# How each string column is made from integer codes: (column holding the codes, values)
CODED = {
    "location_name": ("location_name", LOCATION_NAMES),
    "location_category": ("location_name", LOCATION_CATEGORIES),
    "location_type": ("location_name", [t for _, _, t in LOCATIONS]),
    "vital_category": ("vital_category", VITAL_CATEGORIES),
    "vital_name": ("vital_name", VITAL_NAMES), "meas_site_name": ("meas_site_name", ["Oral"]),
    **{col: ("lab_category", [lab[i] for lab in LABS]) for i, col in
       enumerate(["lab_category", "lab_name", "lab_order_category", "reference_unit"])},
    **{col: ("med_category", [med[i] for med in MEDS]) for i, col in
       enumerate(["med_category", "med_name", "med_group", "med_dose_unit", "med_route_name"])},
    "mar_action_category": ("mar_action_category", ["start", "dose_change", "stop"]),
    "mar_action_name": ("mar_action_category", ["[Started]", "ChangeDose/Rate", "Stopped"]),
    "device_category": ("device_category", [d[0] for d in DEVICES]),
    "device_name": ("device_category", [d[1] for d in DEVICES]),
    "mode_category": ("mode_category", [m[0] for m in MODES]),
    "mode_name": ("mode_category", [m[1] for m in MODES]),
    "vent_brand_name": ("vent_brand_name", ["Drager", "Hamilton"]),
    **{col: ("assessment_category", [a[i] for a in ASSESSMENTS]) for i, col in
       enumerate(["assessment_category", "assessment_name", "assessment_group"])},
    "categorical_value": ("categorical_value", ["Negative", "Positive", "Pass", "Fail"]),
    "text_value": ("text_value", RASS_TEXT),
    "position_name": ("position_name", POSITIONS),
    "position_category": ("position_name", ["not_prone"] * 4 + ["prone"]),
}
CONSTANT = {"hospital_id": "synthetic", "hospital_type": "academic", "med_route_category": "iv",
             "lab_specimen_category": "blood/plasma/serum"}

HOUR_US = 3_600_000_000
EPOCH_2110 = int(datetime(2110, 1, 1, tzinfo=timezone.utc).timestamp()) * 1_000_000
LOCATION_INDEX = {name: i for i, name in enumerate(LOCATION_NAMES)}
